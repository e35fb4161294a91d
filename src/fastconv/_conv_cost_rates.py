"""Constants of the forward cost model (_conv_cost.FEATURES order per algorithm: seconds per
feature unit), fitted by benchmarks/calibrate_cost.py to block-alternated timings at
2 threads on the layers not marked held_out of benchmarks/layers_batch1.csv, benchmarks/shapes.csv.
Fitted 2026-12-04 20:35 UTC from: benchmarks/results/2026-12-04_epyc2c_batch1_model_v3_a.json, benchmarks/results/2026-12-04_epyc2c_batch1_model_v3_b.json, benchmarks/results/2026-12-04_epyc2c_suite_forward_model_v3.json.
Fit quality (geometric mean of |model / measured| per algorithm): direct 1.31x, im2col 1.27x, implicit_gemm 1.19x, fft 1.30x, winograd_f2 1.14x, winograd_f4 1.13x."""

#: FLOPs of the smallest problem each kernel's constants were fitted on (its calibrated range).
MIN_FLOPS = {'direct': 8.467e+05, 'im2col': 8.467e+05, 'implicit_gemm': 8.467e+05, 'fft': 9.634e+06, 'winograd_f2': 1.445e+07, 'winograd_f4': 1.445e+07}

RATES = {
    'direct': (3.351e-05, 7.336e-12, 7.367e-13, 1.69e-10, 1.024e-09),
    'im2col': (0, 1.335e-11, 5.801e-12, 2.804e-10, 0, 4.56e-10),
    'implicit_gemm': (0, 5.518e-10, 6.292e-12, 5.35e-10, 2.069e-10, 5.618e-11),
    'fft': (0, 0, 7.041e-11, 0, 2.804e-09, 8.246e-10),
    'winograd_f2': (5.373e-05, 4.864e-10, 5.802e-12, 4.601e-10),
    'winograd_f4': (0.0001455, 4.64e-10, 5.918e-12, 4.123e-10),
}
