"""The one-pass summary: buffered TSQR against a Gram matrix, in time and in accuracy.

Time: accumulating 10,000 rows of 516 columns in batches of 500. Accuracy: the canonical
correlations of a layer with five nearly repeated units (condition number about 1e6)
against a second layer, from each summary against the in-memory route. The figures in
ccalens.stream.models were measured with this script:

    python benchmarks/bench_summary_route.py
"""
import time

import numpy as np

import ccalens
from ccalens.stream import RowSummary
rng = np.random.default_rng(0)
n, d = 10_000, 516
x = rng.standard_normal((n, d))
# time: buffered TSQR of [1 | X] in batches of 500 against the Gram (syrk) of the same
t = time.perf_counter()

s = RowSummary()
for i in range(0, n, 500):
    s.add([x[i:i+500, :258], x[i:i+500, 258:]])
s.finish()
qr_time = time.perf_counter() - t
t = time.perf_counter()
g = np.zeros((d + 1, d + 1))
for i in range(0, n, 500):
    b = np.c_[np.ones(500), x[i:i+500]]
    g += b.T @ b
gram_time = time.perf_counter() - t
print(f"TSQR {qr_time:.2f} s, Gram {gram_time:.2f} s")
# accuracy on an ill-conditioned layer (a layer and a near-copy of its columns: kappa ~ 1e6)
a = rng.standard_normal((n, 20))
a = np.c_[a, a[:, :5] + 1e-6 * rng.standard_normal((n, 5))]
y = a @ rng.standard_normal((25, 15)) + rng.standard_normal((n, 15))
ref = ccalens.cca(a, y).rho
s = RowSummary()
for i in range(0, n, 500):
    s.add([a[i:i+500], y[i:i+500]])
zx, zy = s.finish().matrices  # noqa: E501
rho_qr = ccalens.cca(zx, zy, rtol=max(n, 25) * np.finfo(float).eps).rho
ac, yc = a - a.mean(0), y - y.mean(0)
c = np.c_[ac, yc]; g = c.T @ c
l = np.linalg.cholesky(g)
z = l.T  # Z^T Z = G: the Gram route's small matrix
rho_gram = ccalens.cca(z[:, :25], z[:, 25:], rtol=max(n, 25) * np.finfo(float).eps).rho
print("max |rho - in-memory|: TSQR %.1e, Gram %.1e" % (np.abs(rho_qr - ref).max(), np.abs(rho_gram - ref).max()))
