// The 8-float vector type of the lane-layout kernels (fft_engine.h, conv2d_fft_kernels.h), included
// inside the namespace of one CPU path. With AVX2 it is a native 256-bit GCC vector. Without, GCC
// would lower a 32-byte vector through the stack (measured 13x slower), so it is two 128-bit SSE
// vectors with the arithmetic spelled out.
#ifdef __AVX2__
typedef float v8 __attribute__((vector_size(32)));
#else
typedef float v4 __attribute__((vector_size(16)));
struct v8 {
    v4 lo, hi;
};
static inline v8 operator+(v8 a, v8 b) { return {a.lo + b.lo, a.hi + b.hi}; }
static inline v8 operator-(v8 a, v8 b) { return {a.lo - b.lo, a.hi - b.hi}; }
static inline v8 operator*(v8 a, v8 b) { return {a.lo * b.lo, a.hi * b.hi}; }
static inline v8 operator*(float s, v8 a) { return {s * a.lo, s * a.hi}; }
static inline v8 operator*(v8 a, float s) { return {a.lo * s, a.hi * s}; }
static inline v8 operator-(v8 a) { return {-a.lo, -a.hi}; }
static inline v8& operator+=(v8& a, v8 b) { return a = a + b; }
static inline v8& operator-=(v8& a, v8 b) { return a = a - b; }
#endif
static_assert(sizeof(v8) == 8 * sizeof(float), "one vector per 8 lanes");

static inline v8 ld(const float* p) {
    v8 v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
static inline void st(float* p, v8 v) { std::memcpy(p, &v, sizeof v); }
