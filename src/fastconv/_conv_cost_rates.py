"""Constants of the forward cost model (_conv_cost.FEATURES order per algorithm: seconds per
feature unit), fitted by benchmarks/calibrate_cost.py to block-alternated timings at
2 threads on the layers not marked held_out of benchmarks/layers_batch1.csv, benchmarks/shapes.csv.
Fitted 2026-12-04 22:03 UTC from: benchmarks/results/2026-12-04_epyc2c_batch1_model_v4_a.json, benchmarks/results/2026-12-04_epyc2c_batch1_model_v4_b.json, benchmarks/results/2026-12-04_epyc2c_suite_forward_model_v4.json.
Fit quality (geometric mean of |model / measured| per algorithm): direct 1.30x, im2col 1.20x, implicit_gemm 1.15x, fft 1.32x, winograd_f2 1.13x, winograd_f4 1.13x."""

#: FLOPs of the smallest problem each kernel's constants were fitted on (its calibrated range).
MIN_FLOPS = {'direct': 8.467e+05, 'im2col': 8.467e+05, 'implicit_gemm': 8.467e+05, 'fft': 9.634e+06, 'winograd_f2': 1.445e+07, 'winograd_f4': 1.445e+07}

RATES = {
    'direct': (5.454e-05, 5.4e-12, 3.017e-13, 1.336e-10, 5.288e-10),
    'im2col': (4.794e-05, 1.001e-10, 4.785e-12, 1.25e-10, 7.023e-09, 1.711e-10),
    'implicit_gemm': (3.668e-05, 3.241e-10, 5.108e-12, 1.095e-10, 1.377e-10, 1.429e-11),
    'fft': (9.435e-06, 0, 5.325e-11, 0, 2.35e-09, 5.582e-10),
    'winograd_f2': (1.311e-05, 3.211e-10, 4.492e-12, 3.841e-10),
    'winograd_f4': (3.682e-05, 3.16e-10, 4.801e-12, 3.363e-10),
}
