"""The seeds' educational toolbox, apart from the library's op layer: classic image filters
(`filters`: Sobel, Gaussian, the four 4x4 edge filters, correlate2d/convolve2d with scipy's
boundary modes) and pictures (`viz`: filters, activation maps, training curves; needs matplotlib).
Both stay importable under their old names, fastconv.filters and fastconv.viz."""
