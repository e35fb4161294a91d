// The BLIS-style loop nest shared by the portable and the AVX2 SGEMM (included by exactly those two
// .cpp files, each with its own micro-kernel; everything here has internal linkage so the copy
// compiled with -mavx2 can never be picked by the linker for the portable path).
//
//   for jc in N step NC            (B panel, kc x nc, packed into slot 7: L3/L2 resident)
//     for pc in K step kc          (kc <= KC, K split into equal blocks)
//       pack B[pc:pc+kc, jc:jc+nc] into NR-wide micro-panels, zero padded
//       for ic in M step MC        (A block, mc x kc, packed into slot 6: L2 resident)
//         pack A[ic:ic+mc, pc:pc+kc] into MR-tall micro-panels
//         for jr in nc step NR     (one B micro-panel stays in L1)
//           for ir in mc step MR   micro-kernel: C[ir:ir+MR, jr:jr+NR] (+)= A panel @ B panel
//
// Threads split C into a grid of panel-aligned blocks (tm x tn); each thread runs the whole nest on
// its block with its own packed buffers, so there is no barrier, and every element of C sees the
// same operations in the same order whatever the thread count: results are bitwise reproducible.
// Two variants for short-and-wide products (the conv shapes): when a thread's rows fit one A block,
// each B micro-panel is packed right before its use and stays in L1 (a whole packed B panel would
// make a round trip through L2/L3); when they fit one row panel and B has unit column stride, B is
// not packed at all and the micro-kernel reads the caller's rows directly.
#pragma once

#include <cstdint>

#include "common/parallel.h"
#include "common/params.h"
#include "common/workspace.h"

namespace fastconv {
namespace {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// Kernel (the traits every micro-kernel file provides):
//   MR, NR               register tile
//   MC, KC, NC           cache blocks (MC a multiple of MR, NC of NR)
//   kNoPackMaxM          largest M that streams an unpacked unit-stride B
//   kStreamsA            tile() takes an lda: 0 for a packed A panel, else A's rows in place
//   pack_a_rows(d, src, lda, kc)   MR rows of kc contiguous floats -> a packed A micro-panel
//   pack_b_rows(d, src, ldb, kc)   kc rows of NR contiguous floats -> a packed B micro-panel
//   pack_b_cols(d, src, ldb, kc)   NR columns of kc contiguous floats -> a packed B micro-panel
//   tile(m, k, a, b, ldb, c, ldc, n, alpha, beta)
//       C[0:m, 0:n] = alpha * (A panel @ B panel)[0:m, 0:n] + beta * C (C not read when beta == 0);
//       a: k x MR packed (row r of step kk at a[kk*MR + r]); b: k rows of NR floats, row stride ldb;
//       c: row-major with row stride ldc; m <= MR, n <= NR. Only rows < m and columns < n are touched.
template <class Kernel>
struct BlockedGemm {
    static constexpr int MR = Kernel::MR, NR = Kernel::NR;

    const GemmParams& p;
    const float* A;
    const float* B;
    float* C;
    int64_t kc_max;  // K block actually used: K split into equal blocks of at most KC
    bool pack_b;
    bool pack_a;

    BlockedGemm(const GemmParams& params, const float* a, const float* b, float* c)
        : p(params), A(a), B(b), C(c) {
        const int64_t blocks = ceil_div(p.K, Kernel::KC);
        kc_max = ceil_div(p.K, blocks);
        pack_b = !(p.b_col == 1 && p.M <= Kernel::kNoPackMaxM);
        // A packed panel is reused by every B micro-panel of the block; with at most
        // kStreamAMaxPanels of them (a batch-1 layer on a 7x7 map: 49 columns, 4 panels) packing
        // costs about as much as the product reads, so unit-stride rows are read in place (not
        // broadcast rows: a row stride of 0 means a packed panel to the kernel).
        pack_a = !(Kernel::kStreamsA && p.a_col == 1 && p.a_row > 0 && ceil_div(p.N, NR) <= kStreamAMaxPanels);
    }
    static constexpr int64_t kStreamAMaxPanels = 4;

    // A[i0:i0+mc, k0:k0+kc] -> MR-tall micro-panels; rows past mc in the last panel are not read
    // by the kernel (it is told m), so they are left unset.
    void pack_a_block(float* dst, int64_t i0, int64_t mc, int64_t k0, int64_t kc) const {
        for (int64_t ir = 0; ir < mc; ir += MR) {
            const int64_t m = min64(MR, mc - ir);
            float* d = dst + ir * kc;
            const float* src = A + (i0 + ir) * p.a_row + k0 * p.a_col;
            if (p.a_col == 1 && m == MR) {
                Kernel::pack_a_rows(d, src, p.a_row, kc);
            } else if (p.a_col == 1) {
                // Rows are contiguous in k: read each row once, write it with stride MR.
                for (int64_t r = 0; r < m; ++r) {
                    const float* s = src + r * p.a_row;
                    for (int64_t k = 0; k < kc; ++k) d[k * MR + r] = s[k];
                }
            } else {
                for (int64_t k = 0; k < kc; ++k)
                    for (int64_t r = 0; r < m; ++r) d[k * MR + r] = src[r * p.a_row + k * p.a_col];
            }
        }
    }

    // B[k0:k0+kc, j0:j0+nc] -> NR-wide micro-panels (panel jr at dst + jr * kc), zero padded.
    void pack_b_panel(float* dst, int64_t k0, int64_t kc, int64_t j0, int64_t nc) const {
        for (int64_t jr = 0; jr < nc; jr += NR) {
            const int64_t n = min64(NR, nc - jr);
            float* d = dst + jr * kc;
            const float* src = B + k0 * p.b_row + (j0 + jr) * p.b_col;
            if (n == NR && p.b_col == 1) {
                Kernel::pack_b_rows(d, src, p.b_row, kc);
            } else if (n == NR && p.b_row == 1) {
                Kernel::pack_b_cols(d, src, p.b_col, kc);
            } else if (p.b_row == 1) {
                // Columns are contiguous in k (a transposed B): read each column once.
                for (int64_t j = 0; j < n; ++j)
                    for (int64_t k = 0; k < kc; ++k) d[k * NR + j] = src[k + j * p.b_col];
                for (int64_t k = 0; k < kc; ++k)
                    for (int64_t j = n; j < NR; ++j) d[k * NR + j] = 0.0f;
            } else {
                for (int64_t k = 0; k < kc; ++k) {
                    for (int64_t j = 0; j < n; ++j) d[k * NR + j] = src[k * p.b_row + j * p.b_col];
                    for (int64_t j = n; j < NR; ++j) d[k * NR + j] = 0.0f;
                }
            }
        }
    }

    // Kernel::tile with A packed (lda 0) or in place (lda: its row stride; kStreamsA kernels only).
    static void kernel_tile(int m, int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                            int64_t ldc, int n, float alpha, float beta) {
        if constexpr (Kernel::kStreamsA)
            Kernel::tile(m, kc, a, lda, b, ldb, c, ldc, n, alpha, beta);
        else
            Kernel::tile(m, kc, a, b, ldb, c, ldc, n, alpha, beta);
    }

    // One micro-tile into C, through a small row-major buffer when C's column stride is not 1.
    void tile(int64_t i, int64_t j, int m, int n, int64_t kc, const float* a, int64_t lda, const float* b,
              int64_t ldb, float beta) const {
        float* c = C + i * p.c_row + j * p.c_col;
        if (p.c_col == 1) {
            kernel_tile(m, kc, a, lda, b, ldb, c, p.c_row, n, p.alpha, beta);
            return;
        }
        alignas(64) float buf[MR * NR];
        if (beta != 0.0f)
            for (int r = 0; r < m; ++r)
                for (int q = 0; q < n; ++q) buf[r * NR + q] = c[r * p.c_row + q * p.c_col];
        kernel_tile(m, kc, a, lda, b, ldb, buf, NR, n, p.alpha, beta);
        for (int r = 0; r < m; ++r)
            for (int q = 0; q < n; ++q) c[r * p.c_row + q * p.c_col] = buf[r * NR + q];
    }

    // The whole loop nest on C[m0:m1, n0:n1] (m0, n0 multiples of MR, NR), on the calling thread.
    // When the rows fit one A block, each B panel is used by that block only: it is then packed
    // micro-panel by micro-panel right before use, into L1 (software prefetch of the next one did not help).
    void run_block(int64_t m0, int64_t m1, int64_t n0, int64_t n1) const {
        const bool fused = pack_b && m1 - m0 <= Kernel::MC;
        const int64_t nc_step = fused ? n1 - n0 : Kernel::NC;
        const int64_t nc_max = fused ? NR : min64(Kernel::NC, ceil_div(n1 - n0, NR) * NR);
        const int64_t mc_max = min64(Kernel::MC, ceil_div(m1 - m0, MR) * MR);
        float* a_buf = pack_a ? thread_scratch(6, size_t(mc_max * kc_max)) : nullptr;
        float* b_buf = thread_scratch(7, size_t((pack_b ? nc_max : NR) * kc_max));
        for (int64_t jc = n0; jc < n1; jc += nc_step) {
            const int64_t nc = min64(nc_step, n1 - jc);
            for (int64_t pc = 0; pc < p.K; pc += kc_max) {
                const int64_t kc = min64(kc_max, p.K - pc);
                const float beta = pc == 0 ? p.beta : 1.0f;  // later K blocks accumulate
                if (pack_b && !fused) pack_b_panel(b_buf, pc, kc, jc, nc);
                for (int64_t ic = m0; ic < m1; ic += Kernel::MC) {
                    const int64_t mc = min64(Kernel::MC, m1 - ic);
                    if (pack_a) pack_a_block(a_buf, ic, mc, pc, kc);
                    for (int64_t jr = 0; jr < nc; jr += NR) {
                        const int n = int(min64(NR, nc - jr));
                        const float* b = b_buf;
                        int64_t ldb = NR;
                        if (fused) {
                            pack_b_panel(b_buf, pc, kc, jc + jr, n);
                        } else if (pack_b) {
                            b = b_buf + jr * kc;
                        } else if (n == NR) {
                            b = B + pc * p.b_row + (jc + jr);
                            ldb = p.b_row;
                        } else {  // last, narrow panel: pack it so nothing past column N is read
                            pack_b_panel(b_buf, pc, kc, jc + jr, n);
                        }
                        for (int64_t ir = 0; ir < mc; ir += MR) {
                            const float* a = pack_a ? a_buf + ir * kc : A + (ic + ir) * p.a_row + pc;
                            tile(ic + ir, jc + jr, int(min64(MR, mc - ir)), n, kc, a, pack_a ? 0 : p.a_row, b, ldb, beta);
                        }
                    }
                }
            }
        }
    }
};

// Threads for a problem: enough work per thread to repay waking it (about 2 MFLOP each).
inline int gemm_threads(const GemmParams& p) {
    const double flops = 2.0 * double(p.M) * double(p.N) * double(p.K);
    const int64_t by_work = int64_t(flops / 2e6) + 1;
    return int(min64(region_threads(), by_work));
}

// Split `threads` into a tm x tn grid over the MR/NR panels of C. Each thread computes its block and
// packs the A rows and B columns it touches, so the busiest thread's time is about
//   rows * cols  (multiply-adds per k)  +  kPackCost * (rows + cols)  (floats packed per k),
// with rows, cols its block padded to whole panels. The packing term decides between grids that
// balance equally well: for (2048 x 512) @ (512 x 49) splitting N had each thread pack all of A
// (118 GFLOP/s against OpenBLAS's 175); for squares both splits pack about the same.
inline void thread_grid(int64_t m_panels, int64_t n_panels, int threads, int mr, int nr, int& tm, int& tn) {
    // One packed float costs about as much as 16 multiply-adds (a strided read and a write against
    // two FMAs a cycle), measured on Zen 4; the choice only needs the order of magnitude.
    constexpr double kPackCost = 16.0;
    double best = 0.0;
    tm = tn = 1;
    for (int cand_n = threads; cand_n >= 1; --cand_n) {
        if (threads % cand_n) continue;
        const int cand_m = threads / cand_n;
        if (cand_n > n_panels || cand_m > m_panels) continue;
        const double rows = double(ceil_div(m_panels, cand_m) * mr), cols = double(ceil_div(n_panels, cand_n) * nr);
        const double cost = rows * cols + kPackCost * (rows + cols);
        if (best == 0.0 || cost < best * (1.0 - 1e-9)) best = cost, tm = cand_m, tn = cand_n;
    }
}

// C = alpha * A @ B + beta * C for M, N, K >= 1, with the threads gemm_threads() allows.
template <class Kernel>
void sgemm_blocked(const GemmParams& params, const float* A, const float* B, float* C) {
    GemmParams p = params;
    // A column-major C is the row-major C^T = B^T A^T: swap the operands so the kernel stores rows.
    if (p.c_col != 1 && p.c_row == 1) {
        GemmParams t = p;
        t.M = p.N, t.N = p.M;
        t.a_row = p.b_col, t.a_col = p.b_row;
        t.b_row = p.a_col, t.b_col = p.a_row;
        t.c_row = p.c_col, t.c_col = p.c_row;
        p = t;
        const float* a = A;
        A = B, B = a;
    }
    constexpr int MR = Kernel::MR, NR = Kernel::NR;
    const BlockedGemm<Kernel> g(p, A, B, C);
    const int64_t m_panels = ceil_div(p.M, MR), n_panels = ceil_div(p.N, NR);
    int tm, tn;
    thread_grid(m_panels, n_panels, gemm_threads(p), MR, NR, tm, tn);
    parallel_for(tm * tn, [&](long long begin, long long end) {
        for (long long t = begin; t < end; ++t) {
            const int64_t bm = t / tn, bn = t % tn;
            const int64_t m0 = min64(p.M, m_panels * bm / tm * MR), m1 = min64(p.M, m_panels * (bm + 1) / tm * MR);
            const int64_t n0 = min64(p.N, n_panels * bn / tn * NR), n1 = min64(p.N, n_panels * (bn + 1) / tn * NR);
            if (m0 < m1 && n0 < n1) g.run_block(m0, m1, n0, n1);
        }
    });
}

}  // namespace
}  // namespace fastconv
