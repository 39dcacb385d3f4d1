// Triangle rasterizer for the CPU: nearest triangle id and z/w per pixel (docs/design.md section 4).
//
// Layers: a core that knows nothing of XLA (raw pointers and sizes, namespace
// ngd_render), then a thin XLA FFI binding (RasterizeFfi) exported with C linkage; the Python
// wrapper is ngd_jax/render/ffi.py. The arithmetic is the specification shared with the portable
// JAX kernel (ngd_jax/render/portable.py), which must give identical ids and depths:
//
// * Pixel (r, c) has its centre at px = c + 0.5 - W/2, py = H/2 - (r + 0.5) in pixel units
//   (y up; row 0 is the top row). These numbers have at most 12 significant bits for H, W <= 4096.
// * Vertices in pixel units: X = x * (W/2), Y = y * (H/2), w. 2-D homogeneous edge functions
//   a_i(p) = A_i + B_i px + C_i py with (A_i, B_i, C_i) the rows of the adjugate of [X; Y; w]
//   (Olano and Greer 1997). A pixel is covered when every s * a_i >= 0 (s = sign of the
//   determinant), which also handles vertices at w <= 0 exactly (only the part in front of the
//   camera is drawn), then clipped to -1 <= z/w <= 1 per pixel.
// * Every product is split so that it is exact (12-bit halves, see Hi12): fused multiply-add
//   contraction, which XLA applies on CPU and GPU, then cannot change any result, and the two
//   kernels round only in additions done in the same order.
// * Ties on a shared edge (a_i == 0) follow a fixed fill rule on the edge's normalized gradient, so
//   a pixel on an edge shared by two triangles is covered by exactly one of them. Depth ties go to
//   the lower triangle id. Degenerate triangles (det == 0, e.g. padding (0, 0, 0)) and faces with
//   an index outside [0, V) are never drawn.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ngd_render {
namespace {

// Keeps the sign, the exponent and the top 11 stored mantissa bits (12 significant bits).
inline float Hi12(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  bits &= 0xFFFFF000u;
  float out;
  std::memcpy(&out, &bits, sizeof(out));
  return out;
}

// Product of two floats as a sum of exact partial products; symmetric in (a, b).
inline float XProd(float a, float b) {
  const float ah = Hi12(a), al = a - ah, bh = Hi12(b), bl = b - bh;
  const float p0 = ah * bh, p1 = al * bl, p2 = ah * bl, p3 = al * bh;
  return (p0 + p1) + (p2 + p3);
}

// Product with a pixel coordinate p (at most 12 significant bits): both partial products exact.
inline float PProd(float a, float p) {
  const float ah = Hi12(a), al = a - ah;
  const float p0 = ah * p, p1 = al * p;
  return p0 + p1;
}

struct TriSetup {
  float A[3], B[3], C[3];
  float dz0, dzx, dzy;
  float s;          // +1 or -1: sign of the determinant.
  bool tl[3];       // Fill rule: edge i owns pixels exactly on it.
  int c0, c1, r0, r1;  // Inclusive pixel bounding box.
  bool active;
};

void SetupTriangle(const float* clip, int64_t num_vertices, const int32_t* face, int H, int W,
                   TriSetup* t) {
  t->active = false;
  for (int i = 0; i < 3; ++i) {
    if (face[i] < 0 || face[i] >= num_vertices) return;
  }
  const float hw = 0.5f * static_cast<float>(W), hh = 0.5f * static_cast<float>(H);
  float x[3], y[3], z[3], w[3], X[3], Y[3];
  for (int i = 0; i < 3; ++i) {
    const float* v = clip + 4 * static_cast<int64_t>(face[i]);
    x[i] = v[0];
    y[i] = v[1];
    z[i] = v[2];
    w[i] = v[3];
    X[i] = x[i] * hw;
    Y[i] = y[i] * hh;
  }
  // Frustum culling: all three vertices outside one clip plane.
  auto all = [](auto pred) { return pred(0) && pred(1) && pred(2); };
  if (all([&](int i) { return x[i] > w[i]; }) || all([&](int i) { return x[i] < -w[i]; }) ||
      all([&](int i) { return y[i] > w[i]; }) || all([&](int i) { return y[i] < -w[i]; }) ||
      all([&](int i) { return z[i] > w[i]; }) || all([&](int i) { return z[i] < -w[i]; }) ||
      all([&](int i) { return w[i] <= 0.0f; })) {
    return;
  }
  for (int i = 0; i < 3; ++i) {
    const int j = (i + 1) % 3, k = (i + 2) % 3;
    t->A[i] = XProd(X[j], Y[k]) - XProd(Y[j], X[k]);
    t->B[i] = XProd(Y[j], w[k]) - XProd(w[j], Y[k]);
    t->C[i] = XProd(w[j], X[k]) - XProd(X[j], w[k]);
  }
  const float det = (XProd(X[0], t->B[0]) + XProd(Y[0], t->C[0])) + XProd(w[0], t->A[0]);
  if (!(det != 0.0f) || !std::isfinite(det)) return;
  t->s = det > 0.0f ? 1.0f : -1.0f;
  for (int i = 0; i < 3; ++i) {
    const float sb = t->s * t->B[i], sc = t->s * t->C[i];
    t->tl[i] = sb > 0.0f || (sb == 0.0f && sc > 0.0f);
  }
  t->dz0 = ((XProd(z[0], t->A[0]) + XProd(z[1], t->A[1])) + XProd(z[2], t->A[2])) / det;
  t->dzx = ((XProd(z[0], t->B[0]) + XProd(z[1], t->B[1])) + XProd(z[2], t->B[2])) / det;
  t->dzy = ((XProd(z[0], t->C[0]) + XProd(z[1], t->C[1])) + XProd(z[2], t->C[2])) / det;
  if (w[0] > 0.0f && w[1] > 0.0f && w[2] > 0.0f) {
    float cmin = std::numeric_limits<float>::infinity(), cmax = -cmin, rmin = cmin, rmax = -cmin;
    for (int i = 0; i < 3; ++i) {
      const float c = X[i] / w[i] + (hw - 0.5f);
      const float r = (hh - 0.5f) - Y[i] / w[i];
      cmin = std::min(cmin, c);
      cmax = std::max(cmax, c);
      rmin = std::min(rmin, r);
      rmax = std::max(rmax, r);
    }
    auto to_int = [](float v, int n) {
      return static_cast<int>(std::min(std::max(v, -1.0f), static_cast<float>(n)));
    };
    t->c0 = std::max(to_int(std::floor(cmin), W), 0);
    t->c1 = std::min(to_int(std::ceil(cmax), W), W - 1);
    t->r0 = std::max(to_int(std::floor(rmin), H), 0);
    t->r1 = std::min(to_int(std::ceil(rmax), H), H - 1);
  } else {
    // A vertex behind the camera: the visible part is unbounded on screen.
    t->c0 = 0;
    t->c1 = W - 1;
    t->r0 = 0;
    t->r1 = H - 1;
  }
  t->active = t->c0 <= t->c1 && t->r0 <= t->r1;
}

inline bool Inside(float e, float s, bool tl) {
  const float ne = s > 0.0f ? e : -e;
  return ne > 0.0f || (ne == 0.0f && tl);
}

// Draws the active triangles into rows [row_begin, row_end) of one image, in id order, so that
// a strict depth comparison leaves ties to the lower id.
void DrawBand(const std::vector<TriSetup>& tris, int H, int W, int row_begin, int row_end,
              float* zbuf, int32_t* ids) {
  const float hw = 0.5f * static_cast<float>(W), hh = 0.5f * static_cast<float>(H);
  std::vector<float> colterm(4 * static_cast<size_t>(W));
  for (size_t f = 0; f < tris.size(); ++f) {
    const TriSetup& t = tris[f];
    if (!t.active || t.r1 < row_begin || t.r0 >= row_end) continue;
    const int r0 = std::max(t.r0, row_begin), r1 = std::min(t.r1, row_end - 1);
    const int nc = t.c1 - t.c0 + 1;
    for (int k = 0; k < nc; ++k) {
      const float px = (static_cast<float>(t.c0 + k) + 0.5f) - hw;
      for (int i = 0; i < 3; ++i) colterm[4 * k + i] = PProd(t.B[i], px);
      colterm[4 * k + 3] = PProd(t.dzx, px);
    }
    for (int r = r0; r <= r1; ++r) {
      const float py = hh - (static_cast<float>(r) + 0.5f);
      float row[3];
      for (int i = 0; i < 3; ++i) row[i] = t.A[i] + PProd(t.C[i], py);
      const float rowz = t.dz0 + PProd(t.dzy, py);
      float* zrow = zbuf + static_cast<int64_t>(r) * W;
      int32_t* idrow = ids + static_cast<int64_t>(r) * W;
      for (int k = 0; k < nc; ++k) {
        const float* ct = &colterm[4 * k];
        if (!Inside(row[0] + ct[0], t.s, t.tl[0]) || !Inside(row[1] + ct[1], t.s, t.tl[1]) ||
            !Inside(row[2] + ct[2], t.s, t.tl[2])) {
          continue;
        }
        const float zw = rowz + ct[3];
        const int c = t.c0 + k;
        if (zw >= -1.0f && zw <= 1.0f && zw < zrow[c]) {
          zrow[c] = zw;
          idrow[c] = static_cast<int32_t>(f);
        }
      }
    }
  }
}

// Runs fn(i) for i in [0, n) on up to `threads` threads.
template <typename Fn>
void ParallelFor(int64_t n, int threads, Fn fn) {
  threads = static_cast<int>(std::min<int64_t>(threads, n));
  if (threads <= 1) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<int64_t> next{0};
  auto worker = [&]() {
    for (int64_t i = next++; i < n; i = next++) fn(i);
  };
  std::vector<std::thread> pool;
  for (int k = 1; k < threads; ++k) pool.emplace_back(worker);
  worker();
  for (auto& th : pool) th.join();
}

}  // namespace

// Core: clip [num_images, V, 4] float32, faces [num_images, F, 3] int32 (row-major). Writes
// depth [num_images, H, W] (z/w, 0 for background) and ids [num_images, H, W] (-1 background).
void Rasterize(const float* clip, const int32_t* faces, int64_t num_images, int64_t num_vertices,
               int64_t num_faces, int H, int W, float* depth, int32_t* ids) {
  const int threads = std::max(1u, std::thread::hardware_concurrency());
  const int64_t hw_pixels = static_cast<int64_t>(H) * W;
  const int bands = std::max(1, std::min(H, 4 * threads));
  std::vector<std::vector<TriSetup>> setups(num_images, std::vector<TriSetup>(num_faces));
  const int64_t face_chunk = 4096;
  const int64_t chunks = (num_faces + face_chunk - 1) / face_chunk;
  ParallelFor(num_images * chunks, threads, [&](int64_t job) {
    const int64_t b = job / chunks, f0 = (job % chunks) * face_chunk;
    const int64_t f1 = std::min(num_faces, f0 + face_chunk);
    for (int64_t f = f0; f < f1; ++f) {
      SetupTriangle(clip + b * num_vertices * 4, num_vertices, faces + (b * num_faces + f) * 3, H,
                    W, &setups[b][f]);
    }
  });
  ParallelFor(num_images * bands, threads, [&](int64_t job) {
    const int64_t b = job / bands;
    const int band = static_cast<int>(job % bands);
    const int row_begin = static_cast<int>(static_cast<int64_t>(H) * band / bands);
    const int row_end = static_cast<int>(static_cast<int64_t>(H) * (band + 1) / bands);
    float* zbuf = depth + b * hw_pixels;
    int32_t* idbuf = ids + b * hw_pixels;
    const int64_t begin = static_cast<int64_t>(row_begin) * W;
    const int64_t end = static_cast<int64_t>(row_end) * W;
    std::fill(zbuf + begin, zbuf + end, std::numeric_limits<float>::infinity());
    std::fill(idbuf + begin, idbuf + end, -1);
    DrawBand(setups[b], H, W, row_begin, row_end, zbuf, idbuf);
    for (int64_t p = begin; p < end; ++p) {
      if (idbuf[p] < 0) zbuf[p] = 0.0f;
    }
  });
}

}  // namespace ngd_render

namespace ffi = xla::ffi;

// FFI binding: clip f32[..., V, 4], faces s32[..., F, 3] with the same leading (batch) shape;
// outputs depth f32[..., H, W] and ids s32[..., H, W].
static ffi::Error RasterizeImpl(ffi::Buffer<ffi::F32> clip, ffi::Buffer<ffi::S32> faces,
                                ffi::ResultBuffer<ffi::F32> depth,
                                ffi::ResultBuffer<ffi::S32> ids) {
  const auto cdims = clip.dimensions(), fdims = faces.dimensions(), odims = depth->dimensions();
  if (cdims.size() < 2 || cdims.back() != 4 || fdims.size() < 2 || fdims.back() != 3 ||
      odims.size() < 2) {
    return ffi::Error::InvalidArgument("rasterize: expected clip [..., V, 4], faces [..., F, 3]");
  }
  const int64_t num_vertices = cdims[cdims.size() - 2], num_faces = fdims[fdims.size() - 2];
  const int H = static_cast<int>(odims[odims.size() - 2]), W = static_cast<int>(odims.back());
  const int64_t num_images = depth->element_count() / (static_cast<int64_t>(H) * W);
  if (static_cast<int64_t>(clip.element_count()) != num_images * num_vertices * 4 ||
      static_cast<int64_t>(faces.element_count()) != num_images * num_faces * 3) {
    return ffi::Error::InvalidArgument("rasterize: clip, faces and output batch shapes differ");
  }
  ngd_render::Rasterize(clip.typed_data(), faces.typed_data(), num_images, num_vertices,
                        num_faces, H, W, depth->typed_data(), ids->typed_data());
  return ffi::Error::Success();
}

extern "C" __attribute__((visibility("default"))) XLA_FFI_Error* NgdRasterizeFfi(
    XLA_FFI_CallFrame* call_frame);

XLA_FFI_DEFINE_HANDLER_SYMBOL(NgdRasterizeFfi, RasterizeImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::S32>>());
