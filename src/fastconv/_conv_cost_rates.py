"""Constants of the forward cost model (_conv_cost.FEATURES order per algorithm: seconds per
feature unit), fitted by benchmarks/calibrate_cost.py to block-alternated timings at
2 threads on the layers not marked held_out of benchmarks/layers_batch1.csv, benchmarks/shapes.csv.
Fitted 2026-12-05 10:25 UTC from: benchmarks/results/2026-12-05_epyc2c_batch1_calib_a.json, benchmarks/results/2026-12-05_epyc2c_batch1_calib_b.json, benchmarks/results/2026-12-05_epyc2c_suite_forward_calib.json.
Fit quality (geometric mean of |model / measured| per algorithm): direct 1.29x, im2col 1.27x, implicit_gemm 1.19x, fft 1.37x, winograd_f2 1.19x, winograd_f4 1.17x."""

#: FLOPs of the smallest problem each kernel's constants were fitted on (its calibrated range).
MIN_FLOPS = {'direct': 8.467e+05, 'im2col': 8.467e+05, 'implicit_gemm': 8.467e+05, 'fft': 9.634e+06, 'winograd_f2': 1.445e+07, 'winograd_f4': 1.445e+07}

RATES = {
    'direct': (3.195e-05, 4.939e-12, 6.106e-13, 1.362e-10, 5.786e-10),
    'im2col': (2.623e-05, 1.662e-10, 5.33e-12, 4.882e-11, 0, 1.536e-10),
    'implicit_gemm': (1.844e-05, 2.977e-10, 5.343e-12, 8.748e-11, 1.002e-10, 2.043e-11),
    'fft': (0, 0, 5.073e-11, 0, 2.163e-09, 6.146e-10),
    'winograd_f2': (1.553e-05, 3.12e-10, 4.52e-12, 2.675e-10),
    'winograd_f4': (1.159e-05, 3.33e-10, 5.03e-12, 1.908e-10),
}
