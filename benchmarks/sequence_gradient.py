"""Prototype: the whole sequence y_1..y_T as one `tf.custom_gradient` op with a hand-written
backward pass, for the tanh MLP potential of `spec.py` (h_0 = 0, no mask, no state bound).

Forward, per step (x: (B, D), h: (B, H), a_1, a_2, q: (B, U)), as the library computes it:

    a_1 = tanh(x W_x + h W_h + b_1),  a_2 = tanh(a_1 W_2 + b_2),  y = a_2 w + b_o
    d_2 = (1 - a_2^2) * w,  q = d_2 W_2^T,  d_1 = q * (1 - a_1^2),  h_next = d_1 W_h^T

keeping only h, a_1, a_2 and q per step. Backward, from y-bar (B, T), a loop from t = T down to
1 that carries only the state adjoint g-bar = dL/dh_t and runs four matmuls per step:

    d_1-bar = g-bar W_h,  q-bar = d_1-bar * s_1,  d_2-bar = q-bar W_2
    a_2-bar = -2 a_2 * d_2-bar * w + y-bar w,  p_2-bar = a_2-bar * s_2
    a_1-bar = -2 a_1 * d_1-bar * q + p_2-bar W_2^T,  p_1-bar = a_1-bar * s_1
    h-bar = p_1-bar W_h^T                 (s_l = 1 - a_l^2)

and the weight gradients once after it, as (T*B)-row matmuls over the stacked steps:

    W_h-bar = sum_t g-bar^T d_1 + h^T p_1-bar,  W_x-bar = sum_t x^T p_1-bar,
    W_2-bar = sum_t q-bar^T d_2 + a_1^T p_2-bar,  w-bar = sum_t a_2^T y-bar + sum_b d_2-bar s_2

This is first-order differentiable only (enough for training through dF/dh).
"""

import tensorflow as tf


def _flat(stacked):
    """(T, B, n) -> (T*B, n)."""
    return tf.reshape(stacked, [-1, stacked.shape[-1]])


@tf.custom_gradient
def sequence_outputs(x, w_1, b_1, w_2, b_2, w_out, b_out):
    """y: (B, T) for x: (B, T, D) and the six weights of the potential."""
    features, steps = x.shape[-1], x.shape[1]
    w_x, w_h = w_1[:features], w_1[features:]
    w = w_out[:, 0]
    xs = tf.transpose(x, [1, 0, 2])
    inputs = tf.TensorArray(x.dtype, size=steps).unstack(xs)
    stacks = [tf.TensorArray(x.dtype, size=steps) for _ in range(5)]  # h, a_1, a_2, q, y

    def body(t, h, stacks):
        a_1 = tf.tanh(tf.matmul(inputs.read(t), w_x) + tf.matmul(h, w_h) + b_1)
        a_2 = tf.tanh(tf.matmul(a_1, w_2) + b_2)
        y = tf.linalg.matvec(a_2, w) + b_out[0]
        q = tf.matmul((1 - a_2 * a_2) * w, w_2, transpose_b=True)
        h_next = tf.matmul(q * (1 - a_1 * a_1), w_h, transpose_b=True)
        stacks = [s.write(t, v) for s, v in zip(stacks, (h, a_1, a_2, q, y), strict=True)]
        return t + 1, h_next, stacks

    h_0 = tf.zeros([tf.shape(x)[0], w_h.shape[0]], x.dtype)
    _, _, stacks = tf.while_loop(
        lambda t, *_: t < steps, body, (tf.constant(0), h_0, stacks), maximum_iterations=steps
    )
    hs, a1s, a2s, qs, ys = (s.stack() for s in stacks)

    def grad(y_bar):
        y_bars = tf.transpose(y_bar)  # (T, B)
        reads = [tf.TensorArray(x.dtype, size=steps).unstack(v) for v in (a1s, a2s, qs, y_bars)]
        writes = [tf.TensorArray(x.dtype, size=steps) for _ in range(4)]  # g, q, p_2, p_1 bars

        def back(t, g_bar, w_bar, writes):
            a_1, a_2, q, f_bar = (r.read(t) for r in reads)
            s_1, s_2 = 1 - a_1 * a_1, 1 - a_2 * a_2
            d1_bar = tf.matmul(g_bar, w_h)
            q_bar = d1_bar * s_1
            d2_bar = tf.matmul(q_bar, w_2)
            a2_bar = -2 * a_2 * d2_bar * w + f_bar[:, None] * w
            p2_bar = a2_bar * s_2
            a1_bar = -2 * a_1 * d1_bar * q + tf.matmul(p2_bar, w_2, transpose_b=True)
            p1_bar = a1_bar * s_1
            w_bar += tf.reduce_sum(d2_bar * s_2, axis=0)
            values = (g_bar, q_bar, p2_bar, p1_bar)
            writes = [s.write(t, v) for s, v in zip(writes, values, strict=True)]
            return t - 1, tf.matmul(p1_bar, w_h, transpose_b=True), w_bar, writes

        _, _, w_bar, writes = tf.while_loop(
            lambda t, *_: t >= 0,
            back,
            (tf.constant(steps - 1), tf.zeros_like(h_0), tf.zeros_like(w), writes),
            maximum_iterations=steps,
        )
        g_bars, q_bars, p2_bars, p1_bars = (_flat(s.stack()) for s in writes)
        a1, a2, q, h = _flat(a1s), _flat(a2s), _flat(qs), _flat(hs)
        d_1, d_2 = q * (1 - a1 * a1), (1 - a2 * a2) * w
        f_bars = tf.reshape(y_bars, [-1])
        w_x_bar = tf.matmul(_flat(xs), p1_bars, transpose_a=True)
        w_h_bar = tf.matmul(g_bars, d_1, transpose_a=True) + tf.matmul(h, p1_bars, transpose_a=True)
        w_2_bar = tf.matmul(q_bars, d_2, transpose_a=True) + tf.matmul(
            a1, p2_bars, transpose_a=True
        )
        w_bar += tf.linalg.matvec(a2, f_bars, transpose_a=True)
        x_bar = tf.transpose(
            tf.reshape(tf.matmul(p1_bars, w_x, transpose_b=True), xs.shape), [1, 0, 2]
        )
        return (
            x_bar,
            tf.concat([w_x_bar, w_h_bar], axis=0),
            tf.reduce_sum(p1_bars, axis=0),
            w_2_bar,
            tf.reduce_sum(p2_bars, axis=0),
            w_bar[:, None],
            tf.reduce_sum(f_bars, keepdims=True),
        )

    return tf.transpose(ys), grad
