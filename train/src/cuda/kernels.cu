// falconry's CUDA kernels for the Falcon training step, compiled at run time by NVRTC.
//
// Header-free on purpose (bf16 is a raw u16, tensor-core and copy instructions are inline PTX),
// so NVRTC needs no include path on the GPU machine. bench/kernels.py compiles this same file
// with CuPy and checks every kernel against PyTorch.
//
// Shapes: N = B*T tokens; d model width; H query heads, KV key/value heads, HD = 64 per head;
// F = MLP width; V vocabulary. Row-major everywhere. Activations are bf16, the residual stream,
// statistics and every gradient of a weight are f32.

typedef unsigned short bf16;
typedef unsigned int u32;
typedef unsigned long long u64;

#define HD 64        // head size of every Falcon
#define TILE 64      // query and key rows per attention tile
#define LDS 72       // smem row stride in bf16: 144 bytes keeps ldmatrix and fragment loads conflict-free
#define LOG2E 1.4426950408889634f
#define LN2 0.6931471805599453f
#define NEG_INF (-__int_as_float(0x7f800000))

// 16 bytes: eight bf16 as four packed pairs.
struct alignas(16) vec8 {
    u32 w[4];
};

// ------------------------------------------------------------------------------------------------
// bf16 and PTX helpers
// ------------------------------------------------------------------------------------------------

__device__ __forceinline__ float bf2f(bf16 x) { return __uint_as_float(((u32)x) << 16); }

__device__ __forceinline__ bf16 f2bf(float f) {
    u32 u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (bf16)0x7fc0;  // NaN stays NaN
    u += 0x7fffu + ((u >> 16) & 1u);                             // round to nearest even
    return (bf16)(u >> 16);
}

// Two floats to a bf16 pair, `lo` in the low half (the lower address).
__device__ __forceinline__ u32 pack2(float lo, float hi) {
    u32 r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

// 2^x in one MUFU instruction (exp2f adds a denormal fix-up around it; softmax weights that
// small are zero to bf16 anyway).
__device__ __forceinline__ float ex2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

__device__ __forceinline__ float lo_f(u32 p) { return __uint_as_float(p << 16); }
__device__ __forceinline__ float hi_f(u32 p) { return __uint_as_float(p & 0xffff0000u); }

__device__ __forceinline__ u32 smem_addr(const void* p) {
    u32 a;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
    return a;
}

// 16 bytes global -> shared, asynchronously (completion through cp_wait).
__device__ __forceinline__ void cp16(void* s, const void* g) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(smem_addr(s)), "l"(g));
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;"); }
template <int N> __device__ __forceinline__ void cp_wait() {
    asm volatile("cp.async.wait_group %0;" ::"n"(N));
}

// D += A(16x16, row) * B(16x8, col), bf16 in, f32 accumulate.
// Fragments (g = lane / 4, t = lane % 4): a = {A[g][2t..], A[g+8][2t..], A[g][2t+8..],
// A[g+8][2t+8..]}; b = {B[2t..][g], B[2t+8..][g]}; c = {C[g][2t], C[g][2t+1], C[g+8][2t],
// C[g+8][2t+1]}.
__device__ __forceinline__ void mma(float* c, const u32* a, const u32* b) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// Four 8x8 bf16 matrices from shared memory: lane l gives the address of row (l % 8) of matrix
// (l / 8); register j receives matrix j, lane l holding row l / 4, columns 2 (l % 4) and + 1.
__device__ __forceinline__ void ldsm(u32* r, const bf16* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}

// The same, transposed: lane l holds rows 2 (l % 4) and + 1 of column l / 4.
__device__ __forceinline__ void ldsm_t(u32* r, const bf16* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}

__device__ __forceinline__ float warp_sum(float x) {
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}
__device__ __forceinline__ float warp_max(float x) {
    for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}
// Over the four lanes of a quad (one row of an mma fragment).
__device__ __forceinline__ float quad_sum(float x) {
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    return x + __shfl_xor_sync(0xffffffffu, x, 2);
}
__device__ __forceinline__ float quad_max(float x) {
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
    return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}

// ------------------------------------------------------------------------------------------------
// Products of a warp's rows with 64 x 64 bf16 tiles in shared memory
// ------------------------------------------------------------------------------------------------
//
// Two ways to run them. mma.sync (any sm_80+): tiles are row-major with rows LDS apart, which
// ldmatrix reads without bank conflicts. Hopper's warpgroup MMAs (WG, sm_90a): the block's four
// warps are one warpgroup, the tensor cores read the tile straight from shared memory through a
// matrix descriptor, rows 128 bytes apart in wgmma's 128-byte swizzle. Either way a warp keeps
// its 16 rows of A in registers (the mma.sync A fragment is also wgmma's register A layout) and
// its accumulators per 8-column n-tile: rows g and g + 8, columns 2t and 2t + 1 (the layout of
// both instructions' accumulators).

#if defined(__CUDA_ARCH_FEAT_SM90_ALL) && !defined(HAS_WGMMA)
#define HAS_WGMMA 1
#endif

// Element offset of (row r, column c) in a tile. WG: the 16-byte chunk c / 8 of row r sits at
// chunk (c / 8) ^ (r % 8), the XOR of address bits 4-6 with bits 7-9 that the swizzle mode of
// the descriptor names, so WG tiles are 1024-byte aligned. TILE * LDS * 2 bytes is 9 x 1024:
// the same shared arrays serve both layouts.
template <bool WG> __device__ __forceinline__ int tix(int r, int c) {
    if constexpr (WG) return r * HD + (((c >> 3) ^ (r & 7)) << 3) + (c & 7);
    else return r * LDS + c;
}

// A 64 x 64 bf16 tile (rows `stride` elements apart in global memory) into shared memory, 16
// bytes per asynchronous copy, by the block's 128 threads.
template <bool WG> __device__ __forceinline__ void load_tile(bf16* s, const bf16* g, long stride) {
    for (int i = threadIdx.x; i < TILE * HD / 8; i += 128) {
        const int r = i >> 3, c = (i & 7) * 8;
        cp16(&s[tix<WG>(r, c)], g + r * stride + c);
    }
}

// Row fragments of a 16 x 64 slice of a tile, as the A operand of 4 k-steps.
template <bool WG>
__device__ __forceinline__ void load_a(u32 (*f)[4], const bf16* s, int row, int t) {
#pragma unroll
    for (int kk = 0; kk < 4; kk++) {
        const int c = kk * 16 + 2 * t;
        f[kk][0] = *(const u32*)&s[tix<WG>(row, c)];
        f[kk][1] = *(const u32*)&s[tix<WG>(row + 8, c)];
        f[kk][2] = *(const u32*)&s[tix<WG>(row, c + 8)];
        f[kk][3] = *(const u32*)&s[tix<WG>(row + 8, c + 8)];
    }
}

// k-step kk of f32 accumulator fragments (16 rows x 64 columns) as bf16 A fragments: the
// accumulator layout of one product is the A layout of the next.
__device__ __forceinline__ void pack_a(u32* a, const float (*p)[4], int kk) {
    a[0] = pack2(p[2 * kk][0], p[2 * kk][1]);
    a[1] = pack2(p[2 * kk][2], p[2 * kk][3]);
    a[2] = pack2(p[2 * kk + 1][0], p[2 * kk + 1][1]);
    a[3] = pack2(p[2 * kk + 1][2], p[2 * kk + 1][3]);
}

// acc[r] = A[r] (16 x 64, registers) * S^T for R row slices of each warp (R query heads at the
// same positions share every B fragment), S a tile whose rows are the 64 columns. B fragments
// come four at a time through ldmatrix: matrices (rows n..n+7, columns k..k+7), (n.., k+8..),
// (n+8.., k..), (n+8.., k+8..) are the two k-halves of n-tiles n/8 and n/8 + 1.
template <int R>
__device__ __forceinline__ void mma_abt(float (*acc)[8][4], const u32 (*a)[4][4], const bf16* s) {
    const int lane = threadIdx.x & 31, m = lane >> 3, i = lane & 7;
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int n = 0; n < 8; n++)
            acc[r][n][0] = acc[r][n][1] = acc[r][n][2] = acc[r][n][3] = 0.f;
#pragma unroll
    for (int np = 0; np < 4; np++) {
#pragma unroll
        for (int kk = 0; kk < 4; kk++) {
            u32 b[4];
            ldsm(b, &s[(np * 16 + (m >> 1) * 8 + i) * LDS + kk * 16 + (m & 1) * 8]);
#pragma unroll
            for (int r = 0; r < R; r++) {
                mma(acc[r][2 * np], a[r][kk], b);
                mma(acc[r][2 * np + 1], a[r][kk], b + 2);
            }
        }
    }
}

// acc[r] += P[r] (16 x 64, bf16 A fragments of 4 k-steps) * S.
template <int R>
__device__ __forceinline__ void mma_pb(float (*acc)[8][4], const u32 (*a)[4][4], const bf16* s) {
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int kk = 0; kk < 4; kk++) {
#pragma unroll
        for (int np = 0; np < 4; np++) {
            u32 b[4];
            const int row = kk * 16 + ((lane >> 3) & 1) * 8 + (lane & 7);
            ldsm_t(b, &s[row * LDS + np * 16 + (lane >> 4) * 8]);
#pragma unroll
            for (int r = 0; r < R; r++) {
                mma(acc[r][2 * np], a[r][kk], b);
                mma(acc[r][2 * np + 1], a[r][kk], b + 2);
            }
        }
    }
}

// Warpgroup MMAs are asynchronous. Around each batch: wg_hold on every register the batch reads
// or writes (A fragments, accumulators), then wg_fence, the MMAs, wg_commit_wait, and wg_hold
// again on every register it touched. The first holds keep the compiler from sinking ordinary
// writes of those registers (a rescale of the accumulators, say) below the fence, where the
// tensor cores may not see them; the last keep it from reading an accumulator or reusing an A
// register before the tensor cores are done.
__device__ __forceinline__ void wg_fence() {
#ifdef HAS_WGMMA
    asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
#endif
}
__device__ __forceinline__ void wg_commit_wait() {
#ifdef HAS_WGMMA
    asm volatile("wgmma.commit_group.sync.aligned;\nwgmma.wait_group.sync.aligned 0;" ::: "memory");
#endif
}
template <int N> __device__ __forceinline__ void wg_hold(float* x) {
#pragma unroll
    for (int i = 0; i < N; i++) asm volatile("" : "+f"(x[i])::"memory");
}
template <int N> __device__ __forceinline__ void wg_hold(u32* x) {
#pragma unroll
    for (int i = 0; i < N; i++) asm volatile("" : "+r"(x[i])::"memory");
}
// Shared memory written by threads (cp.async included) made visible to the tensor cores'
// reads, before the barrier that publishes it.
__device__ __forceinline__ void fence_async_smem() {
#ifdef HAS_WGMMA
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
#endif
}

// Descriptor of the 16-row or 16-column slice of a swizzled tile starting at `s`: 128-byte
// swizzle, 1024 bytes between groups of 8 rows; the other offset is unused by 64-wide tiles.
__device__ __forceinline__ u64 wg_desc(const bf16* s) {
    return (u64)((smem_addr(s) & 0x3ffff) >> 4) | (1ull << 16) | ((u64)(1024 >> 4) << 32) |
           (1ull << 62);
}

#define WG_D                                                                                     \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, " \
    "%20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}"
#define WG_OUT(d)                                                                                \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),          \
        "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]),  \
        "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]),            \
        "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]),            \
        "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])

// d (64 x 64 over the warpgroup) = d * acc + A (64 x 16; this warp's rows in registers) * B
// (16 x 64 through descriptor b). TB = 0: B's tile holds B^T (rows are B's columns, K
// contiguous); TB = 1: B itself (rows are k, N contiguous).
template <int TB>
__device__ __forceinline__ void wg_rs(float* d, const u32* a, u64 b, int acc) {
#ifdef HAS_WGMMA
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " WG_D
                 ", {%32, %33, %34, %35}, %36, p, 1, 1, %38;\n}\n"
                 : WG_OUT(d)
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(acc), "n"(TB));
#else
    __trap();
#endif
}
// The same with A (64 x 16) through descriptor a as well; TA = 1: its tile holds A^T.
template <int TA, int TB>
__device__ __forceinline__ void wg_ss(float* d, u64 a, u64 b, int acc) {
#ifdef HAS_WGMMA
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " WG_D
                 ", %32, %33, p, 1, 1, %35, %36;\n}\n"
                 : WG_OUT(d)
                 : "l"(a), "l"(b), "r"(acc), "n"(TA), "n"(TB));
#else
    __trap();
#endif
}

// d (this warp's 16 rows x 64) = acc ? d + A S^T : A S^T (TB = 0), A S (TB = 1), over the 64
// rows of swizzled tile S, A in registers for 4 k-steps. Issued, not waited for.
template <int TB>
__device__ __forceinline__ void wg_product(float (*d)[4], const u32 (*a)[4], const bf16* s, int acc) {
#pragma unroll
    for (int kk = 0; kk < 4; kk++)
        wg_rs<TB>(&d[0][0], a[kk], wg_desc(TB ? s + kk * 16 * HD : s + kk * 16), kk ? 1 : acc);
}

// The R-slice forms of mma_abt (TB = 0, acc = 0) and mma_pb (TB = 1, acc = 1) as one waited
// batch of warpgroup MMAs.
template <int R, int TB>
__device__ __forceinline__ void wg_products(float (*d)[8][4], u32 (*a)[4][4], const bf16* s, int acc) {
    wg_hold<R * 32>(&d[0][0][0]);
    wg_hold<R * 16>(&a[0][0][0]);
    wg_fence();
#pragma unroll
    for (int r = 0; r < R; r++) wg_product<TB>(d[r], a[r], s, acc);
    wg_commit_wait();
    wg_hold<R * 32>(&d[0][0][0]);
    wg_hold<R * 16>(&a[0][0][0]);
}

// d[r] = Q_r K^T for R 64-row query tiles q[r] and key tile k, all swizzled in shared memory
// (both operands through descriptors, K contiguous), as one waited batch.
template <int R>
__device__ __forceinline__ void wg_scores(float (*d)[8][4], const bf16 (*q)[TILE * HD], const bf16* k) {
    wg_hold<R * 32>(&d[0][0][0]);
    wg_fence();
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int kk = 0; kk < 4; kk++)
            wg_ss<0, 0>(&d[r][0][0], wg_desc(q[r] + kk * 16), wg_desc(k + kk * 16), kk);
    wg_commit_wait();
    wg_hold<R * 32>(&d[0][0][0]);
}

// Tensor-core check of the three descriptor forms the attention kernels use, one warpgroup,
// 64 x 64 bf16 row-major inputs, f32 out [3][64][64]: out0 = a b^T (b K-contiguous), out1 = a b
// (b N-contiguous), out2 = a^T b (both through descriptors, both transposed).
extern "C" __global__ void __launch_bounds__(128) wg_check(const bf16* a, const bf16* b, float* out) {
    __shared__ alignas(1024) bf16 tiles[2][TILE * HD];
    load_tile<true>(tiles[0], a, HD);
    load_tile<true>(tiles[1], b, HD);
    cp_commit();
    cp_wait<0>();
    fence_async_smem();
    __syncthreads();
    const int lane = threadIdx.x & 31, row = (threadIdx.x >> 5) * 16 + (lane >> 2), t = lane & 3;
    u32 af[4][4];
    load_a<true>(af, tiles[0], row, t);
    float d[3][8][4];
    wg_hold<16>(&af[0][0]);
    wg_fence();
    wg_product<0>(d[0], af, tiles[1], 0);
    wg_product<1>(d[1], af, tiles[1], 0);
#pragma unroll
    for (int kk = 0; kk < 4; kk++)
        wg_ss<1, 1>(&d[2][0][0], wg_desc(tiles[0] + kk * 16 * HD), wg_desc(tiles[1] + kk * 16 * HD),
                    kk ? 1 : 0);
    wg_commit_wait();
    wg_hold<96>(&d[0][0][0]);
    wg_hold<16>(&af[0][0]);
#pragma unroll
    for (int i = 0; i < 3; i++)
#pragma unroll
        for (int n = 0; n < 8; n++)
#pragma unroll
            for (int j = 0; j < 4; j++)
                out[(i * 64 + row + (j >> 1) * 8) * 64 + n * 8 + 2 * t + (j & 1)] = d[i][n][j];
}

// ------------------------------------------------------------------------------------------------
// Causal flash attention, head size 64, grouped K/V heads read in place
// ------------------------------------------------------------------------------------------------
//
// One block of 4 warps per 64-row tile of its own side (queries, or keys for dk/dv), each warp
// holding 16 rows in registers, while 64-row tiles of the other side stream through
// double-buffered shared memory. Own rows are staged through the tile buffers first. WG: the
// products are warpgroup MMAs (the `_wg` entry points, Hopper), else mma.sync.

// The block's own rows: `n` 64-row tiles starting at g[i] (rows `stride[i]` apart) into each
// warp's A fragments, through tile buffers 0..n-1.
template <int N, bool WG>
__device__ __forceinline__ void stage_rows(u32 (*f)[4][4], bf16 (*tiles)[TILE * LDS],
                                           const bf16* const* g, const long* stride) {
#pragma unroll
    for (int i = 0; i < N; i++) load_tile<WG>(tiles[i], g[i], stride[i]);
    cp_commit();
    cp_wait<0>();
    __syncthreads();
    const int row = (threadIdx.x >> 5) * 16 + ((threadIdx.x & 31) >> 2);
#pragma unroll
    for (int i = 0; i < N; i++) load_a<WG>(f[i], tiles[i], row, threadIdx.x & 3);
    __syncthreads();
}

// o = softmax(q k^T * scale + causal mask) v and its log-sum-exp for one 64-query tile of R
// heads of one K/V group; longest rows first. q: [B, H, T, 64]; k, v: [B, KV, T, 64];
// o: [B, T, H, 64]; lse: [B, H, T] (natural log).
template <int R, bool WG>
__device__ __forceinline__ void attn_fwd_heads(const bf16* __restrict__ q, const bf16* __restrict__ k,
                                         const bf16* __restrict__ v, bf16* __restrict__ o,
                                         float* __restrict__ lse, int H, int KV, int T,
                                         float scale) {
    // Two buffers each of K and V; WG: then the R query tiles, which the tensor cores read
    // from shared memory (a register A operand that stays live across the loop had its
    // registers reused for P by ptxas, 12.9 here and the driver's on an H100: wrong output).
    // 4 + R swizzled tiles of 8 KB fit the 48 KB of static shared memory.
    constexpr int SLOT = WG ? TILE * HD : TILE * LDS;
    __shared__ alignas(1024) bf16 tiles[WG ? 4 + R : 4][SLOT];
    bf16(*Ks)[SLOT] = tiles, (*Vs)[SLOT] = tiles + 2, (*Qs)[SLOT] = tiles + 4;
    const int qt = T / TILE - 1 - blockIdx.x;
    const int h0 = blockIdx.y * R, b = blockIdx.z, kvh = h0 / (H / KV);
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const bf16* kg = k + (long)(b * KV + kvh) * T * HD;
    const bf16* vg = v + (long)(b * KV + kvh) * T * HD;
    const float sl2 = scale * LOG2E;
    const int q0 = qt * TILE + (threadIdx.x >> 5) * 16 + g, q1 = q0 + 8;

    u32 qf[R][4][4];  // mma.sync only
    {
        const bf16* rows[R];
        long strides[R];
#pragma unroll
        for (int r = 0; r < R; r++) {
            rows[r] = q + ((long)(b * H + h0 + r) * T + qt * TILE) * HD;
            strides[r] = HD;
        }
        if constexpr (WG) {
#pragma unroll
            for (int r = 0; r < R; r++) load_tile<true>(Qs[r], rows[r], HD);
        } else {
            stage_rows<R, false>(qf, tiles, rows, strides);
        }
    }
    load_tile<WG>(Ks[0], kg, HD);
    load_tile<WG>(Vs[0], vg, HD);
    cp_commit();

    float acc[R][8][4], s[R][8][4], m[R][2], l[R][2];
#pragma unroll
    for (int r = 0; r < R; r++) {
#pragma unroll
        for (int n = 0; n < 8; n++) acc[r][n][0] = acc[r][n][1] = acc[r][n][2] = acc[r][n][3] = 0.f;
        m[r][0] = m[r][1] = NEG_INF;
        l[r][0] = l[r][1] = 0.f;
    }

    for (int kt = 0; kt <= qt; kt++) {
        const int buf = kt & 1;
        if (kt < qt) {
            load_tile<WG>(Ks[buf ^ 1], kg + (long)(kt + 1) * TILE * HD, HD);
            load_tile<WG>(Vs[buf ^ 1], vg + (long)(kt + 1) * TILE * HD, HD);
        }
        cp_commit();
        cp_wait<1>();
        if constexpr (WG) fence_async_smem();
        __syncthreads();
        if constexpr (WG) wg_scores<R>(s, Qs, Ks[buf]);
        else mma_abt<R>(s, qf, Ks[buf]);
#pragma unroll
        for (int r = 0; r < R; r++) {
            // Maxima of the raw scores (the scale is positive); the scale goes into the
            // exponent's FMA.
            float n0 = m[r][0], n1 = m[r][1];
#pragma unroll
            for (int n = 0; n < 8; n++) {
#pragma unroll
                for (int j = 0; j < 2; j++) {
                    const int key = kt * TILE + n * 8 + 2 * t + j;
                    if (kt == qt) {
                        if (key > q0) s[r][n][j] = NEG_INF;
                        if (key > q1) s[r][n][2 + j] = NEG_INF;
                    }
                    n0 = fmaxf(n0, s[r][n][j]);
                    n1 = fmaxf(n1, s[r][n][2 + j]);
                }
            }
            n0 = quad_max(n0);
            n1 = quad_max(n1);
            const float alpha0 = ex2((m[r][0] - n0) * sl2), alpha1 = ex2((m[r][1] - n1) * sl2);
            m[r][0] = n0;
            m[r][1] = n1;
            const float b0 = -n0 * sl2, b1 = -n1 * sl2;
            float r0 = 0.f, r1 = 0.f;
#pragma unroll
            for (int n = 0; n < 8; n++) {
                s[r][n][0] = ex2(fmaf(s[r][n][0], sl2, b0));
                s[r][n][1] = ex2(fmaf(s[r][n][1], sl2, b0));
                s[r][n][2] = ex2(fmaf(s[r][n][2], sl2, b1));
                s[r][n][3] = ex2(fmaf(s[r][n][3], sl2, b1));
                r0 += s[r][n][0] + s[r][n][1];
                r1 += s[r][n][2] + s[r][n][3];
                acc[r][n][0] *= alpha0;
                acc[r][n][1] *= alpha0;
                acc[r][n][2] *= alpha1;
                acc[r][n][3] *= alpha1;
            }
            l[r][0] = l[r][0] * alpha0 + r0;
            l[r][1] = l[r][1] * alpha1 + r1;
        }
        u32 pa[R][4][4];
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
            for (int kk = 0; kk < 4; kk++) pack_a(pa[r][kk], s[r], kk);
        if constexpr (WG) wg_products<R, 1>(acc, pa, Vs[buf], 1);
        else mma_pb<R>(acc, pa, Vs[buf]);
        __syncthreads();  // this buffer is refilled next iteration
    }

#pragma unroll
    for (int r = 0; r < R; r++) {
        const int h = h0 + r;
        const float l0 = quad_sum(l[r][0]), l1 = quad_sum(l[r][1]);
        const float i0 = 1.f / l0, i1 = 1.f / l1;
        bf16* o0 = o + ((long)(b * T + q0) * H + h) * HD;
        bf16* o1 = o + ((long)(b * T + q1) * H + h) * HD;
#pragma unroll
        for (int n = 0; n < 8; n++) {
            *(u32*)&o0[n * 8 + 2 * t] = pack2(acc[r][n][0] * i0, acc[r][n][1] * i0);
            *(u32*)&o1[n * 8 + 2 * t] = pack2(acc[r][n][2] * i1, acc[r][n][3] * i1);
        }
        if (t == 0) {
            lse[(long)(b * H + h) * T + q0] = (m[r][0] * sl2 + log2f(l0)) * LN2;
            lse[(long)(b * H + h) * T + q1] = (m[r][1] * sl2 + log2f(l1)) * LN2;
        }
    }
}

// delta[b, h, t] = sum over the head of dO * O (FlashAttention-2's D), one warp per row.
// o, dout: [B, T, H, 64]; delta: [B, H, T].
extern "C" __global__ void attn_bwd_delta(const bf16* __restrict__ o,
                                          const bf16* __restrict__ dout,
                                          float* __restrict__ delta, int B, int H, int T) {
    const long row = (long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= (long)B * T * H) return;
    const u32 a = ((const u32*)(o + row * HD))[lane];
    const u32 c = ((const u32*)(dout + row * HD))[lane];
    const float sum = warp_sum(lo_f(a) * lo_f(c) + hi_f(a) * hi_f(c));
    if (lane == 0) {
        const long bt = row / H;
        const int h = row % H;
        delta[((bt / T) * H + h) * T + bt % T] = sum;
    }
}

// Two f32 additions to consecutive addresses, result unused: one vector reduction on sm_90+,
// two before.
__device__ __forceinline__ void red2(float* p, float a, float b) {
#if __CUDA_ARCH__ >= 900
    asm volatile("red.global.add.v2.f32 [%0], {%1, %2};" ::"l"(p), "f"(a), "f"(b) : "memory");
#else
    asm volatile("red.global.add.f32 [%0], %1;" ::"l"(p), "f"(a) : "memory");
    asm volatile("red.global.add.f32 [%0], %1;" ::"l"(p + 1), "f"(b) : "memory");
#endif
}

// P^T and dS^T = P^T (dP^T - D) in place of S^T and dP^T, in n-tile `s`, `dp` of a warp's key
// rows k0 and k1 (= k0 + 8), for the thread's queries `query` and + 1, their -LSE log2(e) `nl`
// and D `de`; `diag`: the key tile is the query tile, which the causal mask cuts.
__device__ __forceinline__ void bwd_probs(float* s, float* dp, int query, float2 nl, float2 de,
                                          int k0, int k1, bool diag, float sl2) {
#pragma unroll
    for (int j = 0; j < 2; j++) {
        const float l = j ? nl.y : nl.x, e = j ? de.y : de.x;
        float p0 = ex2(fmaf(s[j], sl2, l)), p1 = ex2(fmaf(s[2 + j], sl2, l));
        if (diag) {
            if (query + j < k0) p0 = 0.f;
            if (query + j < k1) p1 = 0.f;
        }
        s[j] = p0;
        s[2 + j] = p1;
        dp[j] = p0 * (dp[j] - e);
        dp[2 + j] = p1 * (dp[2 + j] - e);
    }
}

// A warp's 16 x 64 accumulators times `scale` added into f32 rows of 64 (p: its row g).
__device__ __forceinline__ void red_rows(float* p, const float (*a)[4], float scale) {
    const int t = threadIdx.x & 3;
#pragma unroll
    for (int n = 0; n < 8; n++) {
        red2(p + n * 8 + 2 * t, a[n][0] * scale, a[n][1] * scale);
        red2(p + 8 * HD + n * 8 + 2 * t, a[n][2] * scale, a[n][3] * scale);
    }
}

// dq, dk and dv in one pass (FlashAttention-2's backward) for one query head and one 64-key
// tile: over the query tiles at or after the key tile, S^T = k q^T and dP^T = v dO^T, P^T from
// the LSE, dS^T = P^T (dP^T - D); dv += P^T dO and dk += dS^T q stay in registers, and dS^T goes
// through a shared tile for dq += dS k * scale, added with f32 reductions into dq [B, H, T, 64].
// Five 64^3 products per pair of tiles, where a dq kernel and a dk/dv kernel take seven
// (measured on an H100: as fast at T 2048, 1.12x at T 512; a sixth tile for dS^T, saving two
// of the four barriers per tile, was 3% faster at T 2048 but needs dynamic shared memory).
// dk and dv [B, KV, T, 64] get each query head's share by f32 reductions, so no K/V head is
// repeated in memory. The caller zeroes dq, dk, dv.
extern "C" __global__ void __launch_bounds__(128)
attn_bwd(const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
         const bf16* __restrict__ dout, const float* __restrict__ lse,
         const float* __restrict__ delta, float* __restrict__ dq, float* __restrict__ dk,
         float* __restrict__ dv, int H, int KV, int T, float scale) {
    // Q and dO double-buffered (dS^T goes over the dO tile in use), this block's K.
    __shared__ alignas(16) bf16 tiles[5][TILE * LDS];
    __shared__ alignas(8) float Ls[2][TILE], Es[2][TILE];  // -LSE log2(e) and D of a query tile
    bf16(*Qs)[TILE * LDS] = tiles, (*Ds)[TILE * LDS] = tiles + 2, *Ks = tiles[4];
    const int nq = T / TILE, kt = blockIdx.x;
    const int h = blockIdx.y, b = blockIdx.z, kvh = h / (H / KV);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const float sl2 = scale * LOG2E;
    const int k0 = kt * TILE + warp * 16 + g, k1 = k0 + 8;
    const bf16* kg = k + ((long)(b * KV + kvh) * T + kt * TILE) * HD;

    u32 own[2][4][4];  // k, then v
    {
        const bf16* rows[2] = {kg, v + ((long)(b * KV + kvh) * T + kt * TILE) * HD};
        const long strides[2] = {HD, HD};
        stage_rows<2, false>(own, tiles, rows, strides);
    }

    float dka[1][8][4], dva[1][8][4], s[1][8][4], dp[1][8][4];
#pragma unroll
    for (int n = 0; n < 8; n++) {
        dka[0][n][0] = dka[0][n][1] = dka[0][n][2] = dka[0][n][3] = 0.f;
        dva[0][n][0] = dva[0][n][1] = dva[0][n][2] = dva[0][n][3] = 0.f;
    }
    const long head_rows = (long)(b * H + h) * T;
    auto issue = [&](int qt, int buf) {
        load_tile<false>(Qs[buf], q + (head_rows + qt * TILE) * HD, HD);
        load_tile<false>(Ds[buf], dout + ((long)(b * T + qt * TILE) * H + h) * HD, (long)H * HD);
        if (threadIdx.x < TILE) {
            Ls[buf][threadIdx.x] = -lse[head_rows + qt * TILE + threadIdx.x] * LOG2E;
            Es[buf][threadIdx.x] = delta[head_rows + qt * TILE + threadIdx.x];
        }
    };
    load_tile<false>(Ks, kg, HD);
    issue(kt, 0);
    cp_commit();
    for (int qt = kt; qt < nq; qt++) {
        const int buf = (qt - kt) & 1;
        if (qt + 1 < nq) issue(qt + 1, buf ^ 1);
        cp_commit();
        cp_wait<1>();
        __syncthreads();
        mma_abt<1>(s, own, Qs[buf]);       // S^T: rows = keys, columns = queries
        mma_abt<1>(dp, own + 1, Ds[buf]);  // dP^T
#pragma unroll
        for (int n = 0; n < 8; n++)
            bwd_probs(s[0][n], dp[0][n], qt * TILE + n * 8 + 2 * t,
                      *(const float2*)&Ls[buf][n * 8 + 2 * t],
                      *(const float2*)&Es[buf][n * 8 + 2 * t], k0, k1, qt == kt, sl2);
        u32 pa[2][4][4];  // P^T, dS^T
#pragma unroll
        for (int kk = 0; kk < 4; kk++) {
            pack_a(pa[0][kk], s[0], kk);
            pack_a(pa[1][kk], dp[0], kk);
        }
        mma_pb<1>(dva, pa, Ds[buf]);
        mma_pb<1>(dka, pa + 1, Qs[buf]);
        __syncthreads();  // every warp is done with the dO tile: dS^T goes there
        bf16* ds = Ds[buf];
#pragma unroll
        for (int n = 0; n < 8; n++) {
            *(u32*)&ds[(warp * 16 + g) * LDS + n * 8 + 2 * t] = pack2(dp[0][n][0], dp[0][n][1]);
            *(u32*)&ds[(warp * 16 + g + 8) * LDS + n * 8 + 2 * t] = pack2(dp[0][n][2], dp[0][n][3]);
        }
        __syncthreads();
        // dq rows of this warp: 16 queries x 64, contracting over the tile's 64 keys. A comes
        // transposed out of dS^T: ldmatrix.trans of (keys, queries) blocks gives (query, key)
        // fragments.
        float dqa[8][4];
#pragma unroll
        for (int n = 0; n < 8; n++) dqa[n][0] = dqa[n][1] = dqa[n][2] = dqa[n][3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < 4; kk++) {
            u32 a[4];
            const int m = lane >> 3;
            ldsm_t(a, &ds[(kk * 16 + (m >> 1) * 8 + (lane & 7)) * LDS + warp * 16 + (m & 1) * 8]);
#pragma unroll
            for (int np = 0; np < 4; np++) {
                u32 bb[4];
                const int row = kk * 16 + ((lane >> 3) & 1) * 8 + (lane & 7);
                ldsm_t(bb, &Ks[row * LDS + np * 16 + (lane >> 4) * 8]);
                mma(dqa[2 * np], a, bb);
                mma(dqa[2 * np + 1], a, bb + 2);
            }
        }
        red_rows(dq + (head_rows + qt * TILE + warp * 16 + g) * HD, dqa, scale);
        __syncthreads();  // both buffers of this tile are refilled next iteration
    }
    red_rows(dk + ((long)(b * KV + kvh) * T + k0) * HD, dka[0], scale);
    red_rows(dv + ((long)(b * KV + kvh) * T + k0) * HD, dva[0], 1.f);
}

// attn_bwd on Hopper's warpgroup MMAs, with a sixth tile for dS^T and the LSE and D rows read
// from global memory (the six tiles fill the 48 KB of static shared memory): dV and dK run while
// dS^T is written, three barriers per tile instead of four. (attn_bwd's five tiles on warpgroup
// MMAs: 0.722 ms against this one's 0.681 at B8 H12 KV1 T2048 on an H100.)
extern "C" __global__ void __launch_bounds__(128)
attn_bwd_wg(const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
             const bf16* __restrict__ dout, const float* __restrict__ lse,
             const float* __restrict__ delta, float* __restrict__ dq, float* __restrict__ dk,
             float* __restrict__ dv, int H, int KV, int T, float scale) {
    __shared__ alignas(1024) bf16 tiles[6][TILE * HD];
    bf16(*Qs)[TILE * HD] = tiles, (*Ds)[TILE * HD] = tiles + 2, *Ks = tiles[4], *Ss = tiles[5];
    const int nq = T / TILE, kt = blockIdx.x;
    const int h = blockIdx.y, b = blockIdx.z, kvh = h / (H / KV);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int row = warp * 16 + g;
    const float sl2 = scale * LOG2E;
    const int k0 = kt * TILE + row, k1 = k0 + 8;
    const bf16* kg = k + ((long)(b * KV + kvh) * T + kt * TILE) * HD;

    u32 own[2][4][4];  // k, then v (staged through the first Q buffer)
    load_tile<true>(Ks, kg, HD);
    load_tile<true>(Qs[0], v + ((long)(b * KV + kvh) * T + kt * TILE) * HD, HD);
    cp_commit();
    cp_wait<0>();
    __syncthreads();
    load_a<true>(own[0], Ks, row, t);
    load_a<true>(own[1], Qs[0], row, t);
    __syncthreads();

    float dka[8][4], dva[8][4], s[8][4], dp[8][4], dqa[8][4];
#pragma unroll
    for (int n = 0; n < 8; n++) {
        dka[n][0] = dka[n][1] = dka[n][2] = dka[n][3] = 0.f;
        dva[n][0] = dva[n][1] = dva[n][2] = dva[n][3] = 0.f;
    }
    const long head_rows = (long)(b * H + h) * T;
    auto issue = [&](int qt, int buf) {
        load_tile<true>(Qs[buf], q + (head_rows + qt * TILE) * HD, HD);
        load_tile<true>(Ds[buf], dout + ((long)(b * T + qt * TILE) * H + h) * HD, (long)H * HD);
    };
    issue(kt, 0);
    cp_commit();
    for (int qt = kt; qt < nq; qt++) {
        const int buf = (qt - kt) & 1;
        if (qt + 1 < nq) issue(qt + 1, buf ^ 1);
        cp_commit();
        cp_wait<1>();
        fence_async_smem();
        __syncthreads();
        float2 nl[8], de[8];  // this thread's query columns: -LSE log2(e) and D
#pragma unroll
        for (int n = 0; n < 8; n++) {
            const float2 x = *(const float2*)&lse[head_rows + qt * TILE + n * 8 + 2 * t];
            nl[n] = make_float2(-LOG2E * x.x, -LOG2E * x.y);
            de[n] = *(const float2*)&delta[head_rows + qt * TILE + n * 8 + 2 * t];
        }
        wg_hold<32>(&own[0][0][0]);
        wg_hold<32>(&s[0][0]);
        wg_hold<32>(&dp[0][0]);
        wg_fence();
        wg_product<0>(s, own[0], Qs[buf], 0);   // S^T: rows = keys, columns = queries
        wg_product<0>(dp, own[1], Ds[buf], 0);  // dP^T
        wg_commit_wait();
        wg_hold<32>(&s[0][0]);
        wg_hold<32>(&dp[0][0]);
#pragma unroll
        for (int n = 0; n < 8; n++)
            bwd_probs(s[n], dp[n], qt * TILE + n * 8 + 2 * t, nl[n], de[n], k0, k1, qt == kt, sl2);
        u32 pa[2][4][4];  // P^T, dS^T
#pragma unroll
        for (int kk = 0; kk < 4; kk++) {
            pack_a(pa[0][kk], s, kk);
            pack_a(pa[1][kk], dp, kk);
        }
        wg_hold<32>(&dva[0][0]);
        wg_hold<32>(&dka[0][0]);
        wg_hold<32>(&pa[0][0][0]);
        wg_fence();
        wg_product<1>(dva, pa[0], Ds[buf], 1);
        wg_product<1>(dka, pa[1], Qs[buf], 1);
        // dS^T into its tile while those run (the last iteration's dq read it before this
        // iteration's first barrier).
#pragma unroll
        for (int n = 0; n < 8; n++) {
            *(u32*)&Ss[tix<true>(row, n * 8 + 2 * t)] = pa[1][n >> 1][(n & 1) * 2];
            *(u32*)&Ss[tix<true>(row + 8, n * 8 + 2 * t)] = pa[1][n >> 1][(n & 1) * 2 + 1];
        }
        fence_async_smem();
        __syncthreads();
        // dq rows of this warp: 16 queries x 64, dS read transposed out of dS^T.
        wg_hold<32>(&dqa[0][0]);
        wg_fence();
#pragma unroll
        for (int kk = 0; kk < 4; kk++)
            wg_ss<1, 1>(&dqa[0][0], wg_desc(Ss + kk * 16 * HD), wg_desc(Ks + kk * 16 * HD), kk ? 1 : 0);
        wg_commit_wait();
        wg_hold<32>(&dva[0][0]);
        wg_hold<32>(&dka[0][0]);
        wg_hold<32>(&pa[0][0][0]);
        wg_hold<32>(&dqa[0][0]);
        red_rows(dq + (head_rows + qt * TILE + row) * HD, dqa, scale);
        __syncthreads();  // both buffers of this tile are refilled next iteration
    }
    red_rows(dk + ((long)(b * KV + kvh) * T + k0) * HD, dka, scale);
    red_rows(dv + ((long)(b * KV + kvh) * T + k0) * HD, dva, 1.f);
}

// The forwards' entry points, 128 threads, grid (T / 64, H / R, B) (`2`: R = 2, for an even
// number of query heads per K/V group); the backwards' grid is (T / 64, H, B). `_wg`: warpgroup
// MMAs, for compute capability 9.0 only (built with sm_90a; they trap elsewhere).
#define ATTN_FWD(name, R, WG)                                                                      \
    extern "C" __global__ void __launch_bounds__(128)                                              \
        name(const bf16* q, const bf16* k, const bf16* v, bf16* o, float* lse, int H, int KV,      \
             int T, float scale) {                                                                 \
        attn_fwd_heads<R, WG>(q, k, v, o, lse, H, KV, T, scale);                                   \
    }
ATTN_FWD(attn_fwd, 1, false)
ATTN_FWD(attn_fwd2, 2, false)
ATTN_FWD(attn_fwd_wg, 1, true)
ATTN_FWD(attn_fwd2_wg, 2, true)

// ------------------------------------------------------------------------------------------------
// Rotary embeddings and the fused QKV split (transformers' `_split_heads` layouts)
// ------------------------------------------------------------------------------------------------

// Which tensor and head slot `s` of a token's `(H + 2 KV)` head-sized QKV slots belongs to:
// 0 = q, 1 = k, 2 = v. layout 0: all q heads, then k heads, then v heads (multi-query);
// 1: per K/V group its H/KV q heads, then k, then v (new_decoder_architecture); 2: per head
// q, k, v (falcon-rw).
__device__ __forceinline__ void qkv_slot(int s, int H, int KV, int layout, int* kind, int* head) {
    if (layout == 0) {
        *kind = s < H ? 0 : (s < H + KV ? 1 : 2);
        *head = s < H ? s : (s < H + KV ? s - H : s - H - KV);
    } else if (layout == 1) {
        const int R = H / KV, grp = s / (R + 2), j = s % (R + 2);
        *kind = j < R ? 0 : j - R + 1;
        *head = j < R ? grp * R + j : grp;
    } else {
        *kind = s % 3;
        *head = s / 3;
    }
}

// The cos and sin of RoPE for eight columns of a head's first half at position tt.
struct Rot8 {
    float c[8], s[8];
};

__device__ __forceinline__ Rot8 rot8(const float* __restrict__ cosv, const float* __restrict__ sinv,
                                     int tt, int i) {
    Rot8 r;
    *(float4*)&r.c[0] = *(const float4*)&cosv[tt * 32 + i];
    *(float4*)&r.c[4] = *(const float4*)&cosv[tt * 32 + i + 4];
    *(float4*)&r.s[0] = *(const float4*)&sinv[tt * 32 + i];
    *(float4*)&r.s[4] = *(const float4*)&sinv[tt * 32 + i + 4];
    return r;
}

// Where slot s of token n goes in q [B, H, T, 64] or k, v [B, KV, T, 64]; *kind as qkv_slot's.
__device__ __forceinline__ long head_row(long n, int s, int T, int H, int KV, int layout, int* kind) {
    int head;
    qkv_slot(s, H, KV, layout, kind, &head);
    const long b = n / T, tt = n % T;
    return ((b * (*kind == 0 ? H : KV) + head) * T + tt) * HD;
}

// qkv [N, (H + 2KV) * 64] -> q [B, H, T, 64], k and v [B, KV, T, 64], RoPE (rotate_half form)
// applied to q and k. cos, sin: [T, 32] (the two halves of a head share them). Four threads per
// head and token, each eight columns of both halves (16-byte loads and stores).
extern "C" __global__ void rope_split(const bf16* __restrict__ qkv, bf16* __restrict__ q,
                                      bf16* __restrict__ k, bf16* __restrict__ v,
                                      const float* __restrict__ cosv,
                                      const float* __restrict__ sinv, int B, int T, int H,
                                      int KV, int layout) {
    const int S = H + 2 * KV;
    const long idx = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long)B * T * S * 4) return;
    const int i = (idx & 3) * 8, s = (idx >> 2) % S;
    const long n = (idx >> 2) / S;
    int kind;
    const long at = head_row(n, s, T, H, KV, layout, &kind);
    const bf16* src = qkv + (n * S + s) * HD;
    vec8 x1 = *(const vec8*)(src + i), x2 = *(const vec8*)(src + i + 32);
    if (kind < 2) {
        const Rot8 r = rot8(cosv, sinv, n % T, i);
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const float a0 = lo_f(x1.w[j]), a1 = hi_f(x1.w[j]);
            const float b0 = lo_f(x2.w[j]), b1 = hi_f(x2.w[j]);
            const float c0 = r.c[2 * j], c1 = r.c[2 * j + 1], s0 = r.s[2 * j], s1 = r.s[2 * j + 1];
            x1.w[j] = pack2(a0 * c0 - b0 * s0, a1 * c1 - b1 * s1);
            x2.w[j] = pack2(b0 * c0 + a0 * s0, b1 * c1 + a1 * s1);
        }
    }
    bf16* dst = (kind == 0 ? q : kind == 1 ? k : v) + at;
    *(vec8*)(dst + i) = x1;
    *(vec8*)(dst + i + 32) = x2;
}

// The backward of rope_split: the f32 gradients dq, dk, dv (dk and dv summed over each K/V
// group) back into one bf16 dqkv [N, (H + 2KV) * 64], threads as rope_split's.
extern "C" __global__ void rope_merge(const float* __restrict__ dq, const float* __restrict__ dk,
                                      const float* __restrict__ dv, bf16* __restrict__ dqkv,
                                      const float* __restrict__ cosv,
                                      const float* __restrict__ sinv, int B, int T, int H,
                                      int KV, int layout) {
    const int S = H + 2 * KV;
    const long idx = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long)B * T * S * 4) return;
    const int i = (idx & 3) * 8, s = (idx >> 2) % S;
    const long n = (idx >> 2) / S;
    int kind;
    const long at = head_row(n, s, T, H, KV, layout, &kind);
    const float* src = (kind == 0 ? dq : kind == 1 ? dk : dv) + at;
    float g1[8], g2[8];
    *(float4*)&g1[0] = *(const float4*)&src[i];
    *(float4*)&g1[4] = *(const float4*)&src[i + 4];
    *(float4*)&g2[0] = *(const float4*)&src[i + 32];
    *(float4*)&g2[4] = *(const float4*)&src[i + 36];
    vec8 o1, o2;
    if (kind < 2) {
        const Rot8 r = rot8(cosv, sinv, n % T, i);
#pragma unroll
        for (int j = 0; j < 8; j++) {
            const float a = g1[j], b = g2[j];
            g1[j] = a * r.c[j] + b * r.s[j];
            g2[j] = b * r.c[j] - a * r.s[j];
        }
    }
#pragma unroll
    for (int j = 0; j < 4; j++) {
        o1.w[j] = pack2(g1[2 * j], g1[2 * j + 1]);
        o2.w[j] = pack2(g2[2 * j], g2[2 * j + 1]);
    }
    bf16* dst = dqkv + (n * S + s) * HD;
    *(vec8*)(dst + i) = o1;
    *(vec8*)(dst + i + 32) = o2;
}

// ------------------------------------------------------------------------------------------------
// Embedding, LayerNorm, GELU
// ------------------------------------------------------------------------------------------------

// x[n] = wte[ids[n]] (f32 weights, f32 residual stream). Tokens come as the [B, T + 1] windows
// of the data reader: ids are a window's first T tokens, targets its last T.
extern "C" __global__ void embed_fwd(const unsigned short* __restrict__ win,
                                     const float* __restrict__ wte, float* __restrict__ x, int T,
                                     int d, long total) {
    const long idx = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= total) return;
    const long n = idx / d;
    const int id = win[(n / T) * (T + 1) + n % T];
    x[idx] = wte[(long)id * d + idx % d];
}

// dwte[ids[n]] += dx[n] (f32 atomics).
extern "C" __global__ void embed_bwd(const unsigned short* __restrict__ win,
                                     const float* __restrict__ dx, float* __restrict__ dwte,
                                     int T, int d, long total) {
    const long idx = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= total) return;
    const long n = idx / d;
    const int id = win[(n / T) * (T + 1) + n % T];
    atomicAdd(&dwte[(long)id * d + idx % d], dx[idx]);
}

// Four columns at a time.
__device__ __forceinline__ float4 operator+(float4 a, float4 b) {
    return make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
}
__device__ __forceinline__ float4 operator-(float4 a, float4 b) {
    return make_float4(a.x - b.x, a.y - b.y, a.z - b.z, a.w - b.w);
}
__device__ __forceinline__ float4 operator*(float4 a, float4 b) {
    return make_float4(a.x * b.x, a.y * b.y, a.z * b.z, a.w * b.w);
}
__device__ __forceinline__ float4 operator-(float4 a, float s) {
    return make_float4(a.x - s, a.y - s, a.z - s, a.w - s);
}
__device__ __forceinline__ float4 operator*(float4 a, float s) {
    return make_float4(a.x * s, a.y * s, a.z * s, a.w * s);
}
__device__ __forceinline__ float hsum(float4 a) { return a.x + a.y + a.z + a.w; }
__device__ __forceinline__ float4 ld4(const float* p) { return *(const float4*)p; }
__device__ __forceinline__ uint2 pack4(float4 a) {
    return make_uint2(pack2(a.x, a.y), pack2(a.z, a.w));
}

// LayerNorms read the f32 residual x [N, d] one warp per row, four columns per lane at a time (d
// a multiple of 8). A two-LayerNorm block (new_decoder_architecture) normalizes the same x twice
// with two weights: its kernels take the second weight wb2 (and output y2, or gradient dy2) and
// read x once for both; with one LayerNorm those are null. wb: w then b, each [d].

// y = (x - mean) * rstd * w + b in bf16 (and y2 with wb2); keeps mean and rstd for the backward.
extern "C" __global__ void layernorm_fwd(const float* __restrict__ x, const float* __restrict__ wb,
                                         bf16* __restrict__ y, const float* __restrict__ wb2,
                                         bf16* __restrict__ y2, float* __restrict__ mean,
                                         float* __restrict__ rstd, int N, int d, float eps) {
    const long row = (long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= N) return;
    const float* xr = x + row * d;
    float s = 0.f;
    for (int i = lane * 4; i < d; i += 128) s += hsum(ld4(xr + i));
    const float mu = warp_sum(s) / d;
    float v = 0.f;
    for (int i = lane * 4; i < d; i += 128) {
        const float4 c = ld4(xr + i) - mu;
        v += hsum(c * c);
    }
    const float r = rsqrtf(warp_sum(v) / d + eps);
    for (int i = lane * 4; i < d; i += 128) {
        const float4 h = (ld4(xr + i) - mu) * r;
        *(uint2*)&y[row * d + i] = pack4(h * ld4(wb + i) + ld4(wb + d + i));
        if (y2) *(uint2*)&y2[row * d + i] = pack4(h * ld4(wb2 + i) + ld4(wb2 + d + i));
    }
    if (lane == 0) {
        mean[row] = mu;
        rstd[row] = r;
    }
}

// dres += the input gradient for output gradient dy (f32; and dy2 of the second LayerNorm), and
// when dres16 is given its bf16 copy. The input gradient depends on the output gradients only
// through u = dy w (+ dy2 w2): r (u - mean(u) - x^ mean(u x^)), x^ = (x - mean) r. The weight
// and bias gradients are layernorm_wb's (summed here, every warp of a block adding its rows into
// the same shared-memory columns, the float atomics compiled to compare-and-swap loops: five
// times the forward's time on an H100).
extern "C" __global__ void layernorm_bwd(const float* __restrict__ dy, const float* __restrict__ dy2,
                                         const float* __restrict__ x,
                                         const float* __restrict__ mean,
                                         const float* __restrict__ rstd,
                                         const float* __restrict__ wb,
                                         const float* __restrict__ wb2, float* __restrict__ dres,
                                         bf16* __restrict__ dres16, int N, int d) {
    const long row = (long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= N) return;
    const long at = row * d;
    const float mu = mean[row], r = rstd[row];
    auto u_at = [&](int i) {
        const float4 u = ld4(dy + at + i) * ld4(wb + i);
        return dy2 ? u + ld4(dy2 + at + i) * ld4(wb2 + i) : u;
    };
    float a = 0.f, c = 0.f;
    for (int i = lane * 4; i < d; i += 128) {
        const float4 u = u_at(i);
        a += hsum(u);
        c += hsum(u * ((ld4(x + at + i) - mu) * r));
    }
    a = warp_sum(a) / d;
    c = warp_sum(c) / d;
    for (int i = lane * 4; i < d; i += 128) {
        const float4 h = (ld4(x + at + i) - mu) * r;
        const float4 o = ld4(dres + at + i) + ((u_at(i) - a) - h * c) * r;
        *(float4*)&dres[at + i] = o;
        if (dres16) *(uint2*)&dres16[at + i] = pack4(o);
    }
}

// The weight and bias gradients over one chunk of `rows` rows, into partial[chunk] ([2d]: dw then
// db; with dy2 [4d]: then dw2, db2) for reduce_rows: block (128 columns, chunk blockIdx.y) of 8
// warps, each lane summing four columns of every 8th row in registers (512-byte reads of dy and
// x per warp and row), then the warps' sums through shared memory.
extern "C" __global__ void __launch_bounds__(256)
layernorm_wb(const float* __restrict__ dy, const float* __restrict__ dy2,
             const float* __restrict__ x, const float* __restrict__ mean,
             const float* __restrict__ rstd, float* __restrict__ partial, int N, int d, int rows) {
    __shared__ float4 sums[8][4][32];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int c = blockIdx.x * 128 + lane * 4, sets = dy2 ? 4 : 2;
    const long r0 = (long)blockIdx.y * rows, r1 = min(r0 + rows, (long)N);
    float4 acc[4];
#pragma unroll
    for (int j = 0; j < 4; j++) acc[j] = make_float4(0.f, 0.f, 0.f, 0.f);
    if (c < d) {
        for (long row = r0 + warp; row < r1; row += 8) {
            const float4 h = (ld4(x + row * d + c) - mean[row]) * rstd[row];
            const float4 g = ld4(dy + row * d + c);
            acc[0] = acc[0] + g * h;
            acc[1] = acc[1] + g;
            if (dy2) {
                const float4 g2 = ld4(dy2 + row * d + c);
                acc[2] = acc[2] + g2 * h;
                acc[3] = acc[3] + g2;
            }
        }
    }
#pragma unroll
    for (int j = 0; j < 4; j++) sums[warp][j][lane] = acc[j];
    __syncthreads();
    if (warp < sets && c < d) {
        float4 s = sums[0][warp][lane];
        for (int i = 1; i < 8; i++) s = s + sums[i][warp][lane];
        *(float4*)&partial[(long)blockIdx.y * sets * d + warp * d + c] = s;
    }
}

// out[c] (+)= sum over rows of in[row][c]; in: [rows, width].
extern "C" __global__ void reduce_rows(const float* __restrict__ in, float* __restrict__ out,
                                       int rows, int width, int accumulate) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= width) return;
    float s = 0.f;
    for (int r = 0; r < rows; r++) s += in[(long)r * width + c];
    out[c] = accumulate ? out[c] + s : s;
}

__device__ __forceinline__ float gelu(float x) { return 0.5f * x * (1.f + erff(x * 0.70710678118654752f)); }

// g = gelu(h), exact (erf) form, 8 elements per thread. n: elements, a multiple of 8.
extern "C" __global__ void gelu_fwd(const bf16* __restrict__ h, bf16* __restrict__ g, long n) {
    const long i = ((long)blockIdx.x * blockDim.x + threadIdx.x) * 8;
    if (i >= n) return;
    vec8 u = *(const vec8*)(h + i);
    u32* w = u.w;
#pragma unroll
    for (int j = 0; j < 4; j++) w[j] = pack2(gelu(lo_f(w[j])), gelu(hi_f(w[j])));
    *(vec8*)(g + i) = u;
}

__device__ __forceinline__ float gelu_grad(float x) {
    const float cdf = 0.5f * (1.f + erff(x * 0.70710678118654752f));
    return cdf + x * 0.3989422804014327f * __expf(-0.5f * x * x);
}

// dg <- dg * gelu'(h), in place.
extern "C" __global__ void gelu_bwd(const bf16* __restrict__ h, bf16* __restrict__ dg, long n) {
    const long i = ((long)blockIdx.x * blockDim.x + threadIdx.x) * 8;
    if (i >= n) return;
    vec8 hu = *(const vec8*)(h + i), gu = *(const vec8*)(dg + i);
    u32 *hw = hu.w, *gw = gu.w;
#pragma unroll
    for (int j = 0; j < 4; j++)
        gw[j] = pack2(lo_f(gw[j]) * gelu_grad(lo_f(hw[j])), hi_f(gw[j]) * gelu_grad(hi_f(hw[j])));
    *(vec8*)(dg + i) = gu;
}

// ------------------------------------------------------------------------------------------------
// Cross-entropy over the vocabulary, fused with its gradient
// ------------------------------------------------------------------------------------------------

// Max (MAX = 1) or sum of x over the block, returned to every thread; `red` holds 32 floats.
template <int MAX> __device__ __forceinline__ float block_reduce(float x, float* red) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    x = MAX ? warp_max(x) : warp_sum(x);
    __syncthreads();  // red may still be read from the previous call
    if (lane == 0) red[warp] = x;
    __syncthreads();
    x = lane < (int)(blockDim.x >> 5) ? red[lane] : (MAX ? NEG_INF : 0.f);
    return MAX ? warp_max(x) : warp_sum(x);
}

#define CE_THREADS 1024
#define CE_CHUNKS 8  // 16-byte chunks of a row per thread: V <= 8 * 8 * 1024 (the engine checks)

// One block per token row of bf16 logits [N, V] (V a multiple of 8): loss[n] = logsumexp - the
// target's logit; with grad_scale != 0 the row is overwritten by (softmax - onehot) *
// grad_scale, the gradient the LM head's backward reads (llm.c's fused classifier). The row
// stays in registers between the passes: one read and one write of the logits. A non-null
// `weight` scales row n's loss and gradient by weight[n] (fine-tuning's 0/1 loss mask).
extern "C" __global__ void __launch_bounds__(CE_THREADS)
cross_entropy(bf16* __restrict__ logits, const unsigned short* __restrict__ win,
              const float* __restrict__ weight, float* __restrict__ loss, int T, int V,
              float grad_scale) {
    __shared__ float red[32];
    const long n = blockIdx.x;
    const float w = weight ? weight[n] : 1.f;
    grad_scale *= w;
    const int target = win[(n / T) * (T + 1) + n % T + 1];
    vec8* row = (vec8*)(logits + n * V);
    const int chunks = V / 8;
    // Read before any thread writes the row's gradient (after the reductions' barriers).
    const float target_logit = threadIdx.x == 0 ? bf2f(logits[n * V + target]) : 0.f;
    vec8 u[CE_CHUNKS];
    float mx = NEG_INF;
#pragma unroll
    for (int k = 0; k < CE_CHUNKS; k++) {
        const int i = threadIdx.x + k * CE_THREADS;
        if (i < chunks) {
            u[k] = row[i];
#pragma unroll
            for (int j = 0; j < 4; j++) mx = fmaxf(mx, fmaxf(lo_f(u[k].w[j]), hi_f(u[k].w[j])));
        }
    }
    mx = block_reduce<1>(mx, red);
    const float b = -mx * LOG2E;
    float s = 0.f;
#pragma unroll
    for (int k = 0; k < CE_CHUNKS; k++) {
        if (threadIdx.x + k * CE_THREADS < chunks) {
#pragma unroll
            for (int j = 0; j < 4; j++)
                s += ex2(fmaf(lo_f(u[k].w[j]), LOG2E, b)) + ex2(fmaf(hi_f(u[k].w[j]), LOG2E, b));
        }
    }
    s = block_reduce<0>(s, red);
    const float lse2 = mx * LOG2E + log2f(s);  // log2 of the sum of exp
    if (threadIdx.x == 0) loss[n] = w * (lse2 * LN2 - target_logit);
    if (grad_scale == 0.f && !weight) return;  // a masked row still gets its zero gradient
#pragma unroll
    for (int k = 0; k < CE_CHUNKS; k++) {
        const int i = threadIdx.x + k * CE_THREADS;
        if (i < chunks) {
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int c = i * 8 + 2 * j;
                const u32 w = u[k].w[j];
                const float p0 = ex2(fmaf(lo_f(w), LOG2E, -lse2)) - (c == target ? 1.f : 0.f);
                const float p1 = ex2(fmaf(hi_f(w), LOG2E, -lse2)) - (c + 1 == target ? 1.f : 0.f);
                u[k].w[j] = pack2(p0 * grad_scale, p1 * grad_scale);
            }
            row[i] = u[k];
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Reductions and the optimizer
// ------------------------------------------------------------------------------------------------

// partial[blockIdx.x] = sum of x[i]^2 (squares = 1) or of x[i] over the block's grid-stride share.
extern "C" __global__ void sum_partial(const float* __restrict__ x, long n, int squares,
                                       float* __restrict__ partial) {
    __shared__ float sh[32];
    float s = 0.f;
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        s += squares ? x[i] * x[i] : x[i];
    s = warp_sum(s);
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = s;
    __syncthreads();
    if (threadIdx.x < 32) {
        s = threadIdx.x < (blockDim.x >> 5) ? sh[threadIdx.x] : 0.f;
        s = warp_sum(s);
        if (threadIdx.x == 0) partial[blockIdx.x] = s;
    }
}

// out[slot] = sum of partial[0..n), by one block (deterministic order).
extern "C" __global__ void sum_final(const float* __restrict__ partial, int n,
                                     float* __restrict__ out, int slot) {
    __shared__ float sh[32];
    float s = 0.f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += partial[i];
    s = warp_sum(s);
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = s;
    __syncthreads();
    if (threadIdx.x < 32) {
        s = threadIdx.x < (blockDim.x >> 5) ? sh[threadIdx.x] : 0.f;
        s = warp_sum(s);
        if (threadIdx.x == 0) out[slot] = s;
    }
}

// AdamW on a contiguous run of parameters (PyTorch's update, decoupled decay `wd`), after
// clipping by the global norm whose square sits at *sumsq; writes the bf16 copy the matmuls
// read. bc1, bc2: the bias corrections 1 - beta^t. Four parameters per thread and step
// (16-byte accesses; p, grad, m, v 16-byte aligned), a scalar tail.
extern "C" __global__ void adamw(float* __restrict__ p, bf16* __restrict__ p16,
                                 const float* __restrict__ grad, float* __restrict__ m,
                                 float* __restrict__ v, long n, float lr, float beta1,
                                 float beta2, float eps, float wd, float bc1, float bc2,
                                 const float* __restrict__ sumsq, float clip) {
    float scale = 1.f;
    if (clip > 0.f) {
        const float norm = sqrtf(*sumsq);
        if (norm > clip) scale = clip / (norm + 1e-6f);
    }
    const float decay = 1.f - lr * wd, step = lr / bc1, rbc2 = 1.f / bc2;
    auto update = [&](float& x, float& mi, float& vi, float g) {
        g *= scale;
        mi = beta1 * mi + (1.f - beta1) * g;
        vi = beta2 * vi + (1.f - beta2) * g * g;
        x = x * decay - step * mi / (sqrtf(vi * rbc2) + eps);
    };
    const long n4 = n / 4, stride = (long)gridDim.x * blockDim.x;
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < n4; i += stride) {
        float4 x = ((float4*)p)[i], mi = ((float4*)m)[i], vi = ((float4*)v)[i];
        const float4 g = ((const float4*)grad)[i];
        update(x.x, mi.x, vi.x, g.x);
        update(x.y, mi.y, vi.y, g.y);
        update(x.z, mi.z, vi.z, g.z);
        update(x.w, mi.w, vi.w, g.w);
        ((float4*)p)[i] = x;
        ((float4*)m)[i] = mi;
        ((float4*)v)[i] = vi;
        ((uint2*)p16)[i] = make_uint2(pack2(x.x, x.y), pack2(x.z, x.w));
    }
    for (long i = n4 * 4 + (long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        update(p[i], m[i], v[i], grad[i]);
        p16[i] = f2bf(p[i]);
    }
}

// The bf16 copy of f32 values.
extern "C" __global__ void to_bf16(const float* __restrict__ x, bf16* __restrict__ y, long n) {
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        y[i] = f2bf(x[i]);
}

// ------------------------------------------------------------------------------------------------
// Fine-tuning: NF4 bases and LoRA's input dropout
// ------------------------------------------------------------------------------------------------

// A QLoRA NF4 matrix back to bf16: value i is nf4[code_i] * the absmax of its block of 64, that
// absmax itself double-quantized: dynamic[scales[b]] * scale_absmax[b / 256] + offset. Codes two a
// byte, the first in the high nibble (nf4.rs's layout). One byte per thread.
extern "C" __global__ void nf4_dequant(const unsigned char* __restrict__ packed,
                                       const unsigned char* __restrict__ scales,
                                       const float* __restrict__ scale_absmax,
                                       const float* __restrict__ nf4,
                                       const float* __restrict__ dynamic, float offset,
                                       bf16* __restrict__ out, long n) {
    for (long j = (long)blockIdx.x * blockDim.x + threadIdx.x; 2 * j < n;
         j += (long)gridDim.x * blockDim.x) {
        const long i = 2 * j, b = i / 64;  // both values share a block: 64 is even
        const float absmax = dynamic[scales[b]] * scale_absmax[b / 256] + offset;
        const unsigned char p = packed[j];
        out[i] = f2bf(nf4[p >> 4] * absmax);
        if (i + 1 < n) out[i + 1] = f2bf(nf4[p & 15] * absmax);
    }
}

// Element i's uniform draw in [0, 1) for a mask seeded by `seed` (splitmix64's finalizer): the
// forward and the backward draw the same mask without storing it.
__device__ __forceinline__ float mask_uniform(u64 seed, u64 i) {
    u64 z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (float)(z >> 40) * (1.f / 16777216.f);
}

// LoRA's dropout on an adapter's input: u = x / (1 - p) where kept, 0 where the draw is below p.
extern "C" __global__ void dropout_fwd(const bf16* __restrict__ x, bf16* __restrict__ u, long n,
                                       float p, long seed) {
    const float keep = 1.f / (1.f - p);
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long)gridDim.x * blockDim.x)
        u[i] = mask_uniform((u64)seed, (u64)i) < p ? (bf16)0 : f2bf(bf2f(x[i]) * keep);
}

// Its backward: dst += t / (1 - p) through the same mask, dst f32 or (dst_bf16) bf16.
extern "C" __global__ void dropout_bwd(const float* __restrict__ t, void* __restrict__ dst,
                                       int dst_bf16, long n, float p, long seed) {
    const float keep = 1.f / (1.f - p);
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long)gridDim.x * blockDim.x) {
        if (mask_uniform((u64)seed, (u64)i) < p) continue;
        const float g = t[i] * keep;
        if (dst_bf16) {
            bf16* d = (bf16*)dst;
            d[i] = f2bf(bf2f(d[i]) + g);
        } else {
            ((float*)dst)[i] += g;
        }
    }
}
