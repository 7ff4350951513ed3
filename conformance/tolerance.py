"""Where the suite's tolerances come from: refcnn.testing's rule, with n and S per output.

Every comparison goes through ``refcnn.testing.compare`` (allowed = K * (gamma(n, eps) * S +
n * eta)). This module only says how n and S are obtained, in one of three ways:

``higham``     sums of products (conv2d, conv_transpose2d, linear, average pools): S is the op
               on the absolute values of every input, n the op on ones (each element's true
               reduction length). For a gradient, S is autograd of <op(|inputs|), |g|> and n
               autograd of <op(ones), ones>. All computed in float64 by PyTorch.
``selection``  ops that pick elements (max pools, relu-like masks, flatten): forward exact
               (n = 0); a gradient is a sum of the upstream values routed to an element, so
               S = autograd of <op(x), |g|> and n = autograd of <op(x), ones> at the same x.
``mixed``      everything else (softmax, normalisation, losses, smooth elementwise maps): the
               first-order bound of an algorithm whose every step is exact up to relative
               rounding of its inputs and of its result: S_i = |y_i| + sum_j |dy_i/da_j| |a_j|
               over every floating input a (x, parameters, targets, and g for gradients;
               computed as a Jacobian by PyTorch in float64), and n = the number of rounding
               steps along the longest chain, given per op in BOUNDS below as
               ``a*R + b*L + c`` with R the op's reduction length and L the cost of one NumPy
               transcendental (exp, log, tanh, expm1, log1p, erf).

BOUNDS is the one table of the non-sum ops; it is printed in every report. Nothing here is
tuned to make a test pass: a comparison that fails is investigated, not widened.
"""

from __future__ import annotations

from dataclasses import dataclass

from refcnn import testing

# One NumPy transcendental: at most 4 ulp (NumPy documents < 4 ulp for its SIMD float32
# exp/log; glibc's double versions are < 1 ulp), i.e. 8 units of eps.
L = 8


@dataclass(frozen=True)
class Count:
    """n = a*R + b*L + c (R: the reduction length the spec reports for the case)."""

    a: int
    b: int
    c: int
    why: str

    def n(self, R: int) -> int:
        return self.a * R + self.b * L + self.c

    def text(self) -> str:
        parts = [f"{self.a}*R" if self.a else "", f"{self.b}*L" if self.b else "", str(self.c) if self.c else ""]
        return " + ".join(p for p in parts if p) or "0"


# op -> check kind ("forward", "grad", "state") -> Count. R per op is stated in `R_MEANING`.
BOUNDS: dict[str, dict[str, Count]] = {
    "relu": {"forward": Count(0, 0, 0, "a selection: exact"), "grad": Count(0, 0, 0, "g masked: exact")},
    "hardtanh": {"forward": Count(0, 0, 0, "a clamp: exact"), "grad": Count(0, 0, 0, "g masked: exact")},
    "leaky_relu": {"forward": Count(0, 0, 1, "one product"), "grad": Count(0, 0, 1, "one product")},
    "elu": {
        "forward": Count(0, 1, 3, "alpha*(exp(x)-1): exp, subtract, multiply"),
        "grad": Count(0, 1, 4, "g*alpha*exp(x) (or g*(y+alpha))"),
    },
    "gelu": {
        "forward": Count(0, 2, 6, "0.5*x*(1+erf(x/sqrt2)) or the tanh form: one transcendental, <= 6 ops"),
        "grad": Count(0, 3, 10, "g*(Phi(x) + x*phi(x)): erf and exp, <= 10 ops"),
    },
    "silu": {
        "forward": Count(0, 1, 4, "x/(1+exp(-x))"),
        "grad": Count(0, 1, 8, "g*s*(1 + x*(1-s))"),
    },
    "sigmoid": {"forward": Count(0, 1, 3, "1/(1+exp(-x))"), "grad": Count(0, 1, 6, "g*y*(1-y)")},
    "tanh": {"forward": Count(0, 1, 1, "tanh"), "grad": Count(0, 1, 4, "g*(1-y*y)")},
    "softmax": {
        "forward": Count(1, 1, 3, "x-max, exp, sum of R, divide"),
        "grad": Count(2, 1, 6, "y*(g - sum_R(g*y))"),
    },
    "log_softmax": {
        "forward": Count(1, 2, 3, "x-max, exp, sum of R, log, subtract"),
        "grad": Count(2, 2, 6, "g - exp(y)*sum_R(g)"),
    },
    "cross_entropy": {
        "forward": Count(2, 2, 8, "log_softmax over C, then a weighted sum over N (and C for smoothing), divide"),
        "grad": Count(2, 2, 10, "(softmax - target)*w/norm"),
    },
    "nll_loss": {
        "forward": Count(1, 0, 3, "weighted sum over N, divide"),
        "grad": Count(1, 0, 3, "-w/norm at the target"),
    },
    "mse_loss": {"forward": Count(1, 0, 4, "(x-t)^2 summed over R, divide"), "grad": Count(0, 0, 4, "2*(x-t)*g/R")},
    "l1_loss": {"forward": Count(1, 0, 3, "|x-t| summed over R, divide"), "grad": Count(0, 0, 3, "sign(x-t)*g/R")},
    "smooth_l1_loss": {
        "forward": Count(1, 0, 6, "0.5*d^2/beta or |d|-0.5*beta, summed over R, divide"),
        "grad": Count(0, 0, 4, "clip(d/beta)*g/R"),
    },
    "binary_cross_entropy": {
        "forward": Count(1, 2, 6, "-(t*log(x) + (1-t)*log(1-x)) summed over R, divide"),
        "grad": Count(0, 0, 8, "g*(x-t)/(x*(1-x))/R"),
    },
    "binary_cross_entropy_with_logits": {
        "forward": Count(1, 3, 8, "(1-t)*x + log1p(exp(-|x|)) + max(-x,0), summed over R, divide"),
        "grad": Count(0, 1, 6, "g*(sigmoid(x)-t)/R"),
    },
    "batch_norm": {
        "forward": Count(2, 0, 10, "mean (R+1), two-pass variance (R+3), sqrt, divide, scale, shift"),
        "grad": Count(4, 0, 16, "g-mean(g)-xhat*mean(g*xhat), scaled: two more sums of R"),
        "state": Count(2, 0, 8, "(1-m)*running + m*statistic (unbiased variance: *R/(R-1))"),
    },
    "layer_norm": {
        "forward": Count(2, 0, 10, "as batch_norm over the normalised dims"),
        "grad": Count(4, 0, 16, "as batch_norm over the normalised dims"),
    },
    "group_norm": {
        "forward": Count(2, 0, 10, "as batch_norm over each group"),
        "grad": Count(4, 0, 16, "as batch_norm over each group"),
    },
    "dropout": {"forward": Count(0, 0, 1, "x * (1/(1-p)): one product"), "grad": Count(0, 0, 1, "one product")},
    "optimizer": {
        "trajectory": Count(
            16,
            0,
            0,
            "R = steps; <= 16 rounding steps per step (Adam/AdamW/RMSprop/Adagrad "
            "moments, bias corrections, sqrt, divide, decay, momentum); grads given, "
            "so errors do not feed back through them",
        ),
    },
    "lr_scheduler": {
        "lr": Count(4, 1, 4, "R = epochs; each epoch at most a cos/multiply/divide/add chain on the previous lr"),
    },
}

R_MEANING = {
    "softmax": "R = the size of dim",
    "log_softmax": "R = the size of dim",
    "cross_entropy": "R = C + N (classes + samples summed)",
    "nll_loss": "R = N (samples summed)",
    "mse_loss": "R = elements summed by the reduction (1 for 'none')",
    "l1_loss": "R = elements summed by the reduction (1 for 'none')",
    "smooth_l1_loss": "R = elements summed by the reduction (1 for 'none')",
    "binary_cross_entropy": "R = elements summed by the reduction (1 for 'none')",
    "binary_cross_entropy_with_logits": "R = elements summed by the reduction (1 for 'none')",
    "batch_norm": "R = N*H*W (elements per channel)",
    "layer_norm": "R = elements of normalized_shape",
    "group_norm": "R = elements per (sample, group)",
}

TERMS_TEXT = {
    "sigmoid, tanh": "grad: |g|*y*(1+y) (g*y*(1-y)), |g|*(1+y^2) (g*(1-y^2))",
    "silu": "grad: |g|*s*(1+|x|*(1+s)); forward and grad: |x|*eta/eps (a subnormal exp(-|x|) times x)",
    "gelu": "forward: 0.5*|x|*(1+|erf|) (1 + erf cancels); grad: |g|*(0.5*(1+|erf|) + |x|*phi(x)); |x|*eta/eps",
    "elu": "x <= 0: |alpha|*(exp(x)+1) (alpha*(exp(x)-1)); grad |g|*|alpha|*(exp(x)+1)",
    "log_softmax": "forward: |x-m| + log(s) + 1 (s = sum exp(x-m) rounds relative to s >= 1); grad: |g| + p*sum|g|",
    "softmax": "grad: p*(|g| + sum(|g|*p)) (g - sum(g*y) cancels)",
    "cross_entropy": "forward: sum over rows and classes of w*q*(|x-m| + log(s) + 1) times the reduction's scale; "
    "grad: |A_r|*(a_r*p + w*q) for A_r*(p - q), a_r = sum(w*q) (q the smoothed target)",
    "binary_cross_entropy_with_logits": "forward: w*(|(1-t)*x| + |l|*(max(-x,0) + log1p(exp(-|x|)))) reduced as the loss "
    "(l = 1 + (p-1)*t), times u64/u of the checked dtype: PyTorch's float64 (1-t)*x + l*(max(-x,0) + log(...)) "
    "cancels for x << 0, which is the reference's error only (refcnn's split form does not cancel)",
    "batch_norm, group_norm, layer_norm": "xa = (|x| + mean|x|)*rstd: forward |w|*xa; grad_x "
    "rstd*(|gw| + mean|gw| + xa*mean(|gw|*xa)), gw = g*w; grad_weight sum |g|*xa (evaluation: running mean for mean|x|)",
}

# The random-direction VJP check (float64, on cases too large for element-wise differences).
VJP_STEP = 1e-6
VJP_POLICY = (
    "vjp_direction (float64, on cases past the element-wise finite differences' size): F(t) = "
    "<g, op(theta + t*v)> over every differentiated input at once, v normal with unit norm per input; "
    f"D(h) = (F(h) - F(-h))/(2h), h = {VJP_STEP:g}, against <grad, v> (the backward's gradients); "
    "|D(h) - <grad, v>| <= K*((R + eps*sum|grad*theta|)/h + |D(2h) - D(h)|/3 + gamma(m, eps)*sum|grad*v|): "
    "R bounds one evaluation's rounding (each output within the forward's own bound, n and S as for forward, "
    "then gamma(size of y)*sum|g*y| for the inner product), eps*sum|grad*theta| the rounding of theta + t*v, "
    "|D(2h) - D(h)|/3 the truncation h**2*F3/6 (F3 the third derivative along v) estimated by Richardson "
    "(D(2h) - D(h) = 3*h**2*F3/6 + O(h**4)), the last term the m products of <grad, v>. "
    "No derivative at a kink: cases marked as at kinks or ties are not checked."
)

OPTIM_TEXT = (
    "optimizers: n = 16*steps, S = sum over the steps so far of (|p_s| + |p_(s+1)| + |p_(s+1) - p_s|) on PyTorch's float64 trajectory; "
    "schedulers: n = 4*epochs + L + 4, S = max(|lr_t|, base lr)."
)


RELATIONS_TEXT = (
    "Metamorphic relations (conformance/relations.py; no reference value, the kernel run twice, bound from "
    "the case's own n and S): shift_invariance (softmax, log_softmax, cross_entropy; x + c per row along the "
    "normalised dim, |c| = 1e3..1e4 x the row's max |x|): |f(fl(x+c)) - f(x)| <= K*(gamma(2n+1)*(S(x) + S(x+c)) "
    "+ (2n+1)*eta), each side within its own bound and the rounding of x + c moving the exact result by at most "
    "gamma(1)*S(x+c), S(x+c) computed at the shifted input as S(x) is; same form for the input gradient. "
    "homogeneity (conv, linear with the bias dropped, pooling, relu, leaky_relu; per case a power of two "
    "below 1 and one above, 2^-20..2^20, and a = 3*2^-k): a power of two a commutes "
    "with every rounding but underflow, so f(a x) and a f(x), compared at the smaller scale, differ by at most "
    "K*2n*eta (forward, and every gradient: degree 0 for x, 1 for a weight); a = 3*2^-k: fl(a x) moves f by "
    "at most u*a*S (u*a*|y| for a selection), <= K*(gamma(2n+2)*a*S + (2n+2)*eta); skipped where x or a x holds "
    "a subnormal. translation (conv2d, conv_transpose2d, max/avg pooling, any stride): x embedded in a larger "
    "random canvas at whole strides gives the same outputs away from the borders, and with the upstream "
    "gradient zero elsewhere the same input and parameter gradients: the same terms summed in another order, "
    "<= K*(gamma(2n)*S + 2n*eta) (a selection: exact)."
)


def policy_text() -> str:
    """The whole policy as printed in every report (JSON ``tolerance_policy``, Markdown)."""
    lines = [
        testing.POLICY,
        testing.FD_POLICY,
        VJP_POLICY,
        "Methods (conformance/tolerance.py): higham = sums of products, S = op(|inputs|), n = op(ones); "
        "selection = forward exact, gradient n/S = autograd with ones/|g| at the same x; "
        "mixed = S_i = |y_i| + sum_j |dy_i/da_j|*|a_j| over every float input (Jacobian by PyTorch, float64), "
        f"n = a*R + b*L + c, L = {L} (one NumPy transcendental, <= 4 ulp); "
        "plus T_i, the magnitudes of the terms the textbook (and PyTorch's float64) formula sums where it "
        "cancels, which the Jacobian misses (table T below).",
        "adjoint: |<op(x), g> - <x, op^T(g)>| <= K*gamma(n, eps)*S with S = <op(|x|), |g|>, "
        "n = max reduction length + number of elements summed in the inner product.",
        OPTIM_TEXT,
        RELATIONS_TEXT,
        "Table of the mixed-method counts (op: check n = formula, why):",
    ]
    lines.append("Table T of the cancellation terms added to S (mixed method):")
    lines.extend(f"  {op}: {text}" for op, text in TERMS_TEXT.items())
    for op, kinds in BOUNDS.items():
        for kind, count in kinds.items():
            r = f" [{R_MEANING[op]}]" if op in R_MEANING else ""
            lines.append(f"  {op}: {kind} n = {count.text()} ({count.why}){r}")
    return "\n".join(lines)
