/* fit_erf.c — where vmc_erf's coefficients (codegen/emit_cuda.c, codegen_preamble) come from: least-squares fits at
 * 400 Chebyshev nodes, in long double, of
 *   A: erf(x)/x as a polynomial of degree 7 in u = (x^2 - c)/h, x in [0, 1.25]   (relative error weighted)
 *   B: log(erfc(t)) as a polynomial of degree 8 in v = (t - c)/h, t in [1.25, 4] (error times erfc, as it reaches erf)
 * printed highest degree first, as the Horner loops use them, with the worst error of the float evaluation.
 * usage: cc -O2 -o fit_erf scripts/fit_erf.c -lm && ./fit_erf */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
typedef long double LD;

static LD erf_over_x(LD s) { return s == 0 ? 2 / sqrtl(M_PIl) : erfl(sqrtl(s)) / sqrtl(s); }
static LD log_erfc(LD t) { return logl(erfcl(t)); }

/* weight: 1 relative to f, 2 absolute times e^f (B: an error in Q moves erf by erfc times it) */
static void fit(LD (*f)(LD), LD a, LD b, int n, int weight, const char *what) {
    enum { M = 400 };
    const LD c = (a + b) / 2, h = (b - a) / 2;
    LD A[16][16] = {{0}}, r[16] = {0}, co[16];
    for (int i = 0; i < M; i++) {   /* normal equations in the monomials of u (|u| <= 1, n small: well conditioned) */
        const LD u = cosl(M_PIl * (i + 0.5L) / M), y = f(c + h * u), w = weight == 1 ? 1 / (y * y) : expl(2 * y);
        LD p[16] = {1};
        for (int k = 1; k <= n; k++) p[k] = p[k - 1] * u;
        for (int j = 0; j <= n; j++) {
            r[j] += w * p[j] * y;
            for (int k = 0; k <= n; k++) A[j][k] += w * p[j] * p[k];
        }
    }
    for (int j = 0; j <= n; j++) {   /* Gaussian elimination with partial pivoting */
        int piv = j;
        for (int i = j + 1; i <= n; i++) if (fabsl(A[i][j]) > fabsl(A[piv][j])) piv = i;
        for (int k = 0; k <= n; k++) { const LD t = A[j][k]; A[j][k] = A[piv][k]; A[piv][k] = t; }
        const LD t = r[j]; r[j] = r[piv]; r[piv] = t;
        for (int i = j + 1; i <= n; i++) {
            const LD m = A[i][j] / A[j][j];
            for (int k = j; k <= n; k++) A[i][k] -= m * A[j][k];
            r[i] -= m * r[j];
        }
    }
    for (int j = n; j >= 0; j--) {
        LD s = r[j];
        for (int k = j + 1; k <= n; k++) s -= A[j][k] * co[k];
        co[j] = s / A[j][j];
    }
    printf("%s: u = (x - %.9Lg) / %.9Lg\n", what, c, h);
    for (int k = n; k >= 0; k--) printf("  %.9ef\n", (double)(float)co[k]);
    LD worst = 0;
    for (int i = 0; i <= 200000; i++) {   /* the float Horner evaluation, as the kernel does it */
        const LD x = a + (b - a) * i / 200000, y = f(x);
        const float u = ((float)x - (float)c) / (float)h;
        float p = (float)co[n];
        for (int k = n - 1; k >= 0; k--) p = fmaf(p, u, (float)co[k]);
        const LD e = weight == 1 ? fabsl((p - y) / y) : fabsl(p - y) * expl(y);
        if (e > worst) worst = e;
    }
    printf("  worst %s error %.3Lg\n", weight == 1 ? "relative" : "erf", worst);
}

int main(void) {
    fit(erf_over_x, 0, 1.25L * 1.25L, 7, 1, "A: erf(x)/x in x^2");
    fit(log_erfc, 1.25L, 4, 8, 2, "B: log erfc(t)");
    return 0;
}
