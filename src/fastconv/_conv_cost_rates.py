"""Constants of the forward cost model (_conv_cost.FEATURES order per algorithm: seconds per
feature unit), fitted by benchmarks/calibrate_cost.py to block-alternated timings at
2 threads on the layers not marked held_out of benchmarks/layers_batch1.csv, benchmarks/shapes.csv.
Fitted 2026-12-04 20:23 UTC from: benchmarks/results/2026-12-04_epyc2c_batch1_model_v1.json, benchmarks/results/2026-12-04_epyc2c_suite_forward_model_v1.json.
Fit quality (geometric mean of |model / measured| per algorithm): direct 1.32x, im2col 1.30x, implicit_gemm 1.21x, fft 1.40x, winograd_f2 1.19x, winograd_f4 1.15x."""

#: FLOPs of the smallest problem each kernel's constants were fitted on (its calibrated range).
MIN_FLOPS = {'direct': 8.467e+05, 'im2col': 8.467e+05, 'implicit_gemm': 8.467e+05, 'fft': 9.634e+06, 'winograd_f2': 1.445e+07, 'winograd_f4': 1.445e+07}

RATES = {
    'direct': (4.561e-05, 4.855e-12, 6.2e-13, 1.725e-10, 7.639e-10),
    'im2col': (7.741e-05, 1.766e-10, 5.959e-12, 1.034e-11, 2.512e-08),
    'implicit_gemm': (8.439e-05, 1.951e-10, 4.376e-12, 2.097e-10),
    'fft': (0, 0, 5.893e-11, 0, 2.555e-09, 5.352e-10),
    'winograd_f2': (0, 2.571e-10, 5.453e-12, 3.759e-10),
    'winograd_f4': (0, 3.684e-10, 4.633e-12, 3.695e-10),
}
