"""Head variants, compared on VALIDATION data only (val digits rule, val_neg / val_neg2 refused)."""

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ood_scores import CACHE, MAX_REFUSED_DIGITS, feats, p_not_digit, threshold_for  # noqa: E402


def inputs(f, kind):
    logp = np.log(np.maximum(f["prob"].astype(np.float64), 1e-12))
    parts = {
        "pen": [f["pen"]],
        "pen+logp": [f["pen"], logp],
        "flat+pen+logp": [f["flat"], f["pen"], logp],
        "logp": [logp],
        "logits": [f["logits"]],
    }[kind]
    return np.concatenate([np.asarray(p, np.float64) for p in parts], axis=1)


def train(x, y, hidden, epochs, seed=0, dropout=0.0, l2=1e-4):
    import keras

    mu, sd = x.mean(0), x.std(0) + 1e-6
    w = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean())).astype(np.float32)
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((x.shape[1],))]
    for h in hidden:
        layers.append(keras.layers.Dense(h, activation="relu", kernel_regularizer=keras.regularizers.l2(l2)))
        if dropout:
            layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(1, kernel_regularizer=keras.regularizers.l2(l2)))
    model = keras.Sequential(layers)
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.BinaryCrossentropy(from_logits=True))
    model.fit(
        ((x - mu) / sd).astype(np.float32),
        y.astype(np.float32),
        sample_weight=w,
        batch_size=512,
        epochs=epochs,
        verbose=0,
    )
    return lambda z: model.predict(((z - mu) / sd).astype(np.float32), batch_size=4096, verbose=0)[:, 0]


def main(configs):
    names = ["train_mnist", "train_canvas", "val_mnist", "val_canvas", "val_neg", "val_neg2"]
    negs = [n for n in ("train_neg", "train_neg2", "train_neg3", "train_neg4") if (CACHE / f"feat_{n}.npz").exists()]
    S = {n: feats(n) for n in names + negs}
    p = {n: p_not_digit(S[n]["prob"]) for n in names}
    rng = np.random.default_rng(11)
    for cfg in configs:
        kind, hidden, epochs, nd, neg_names, dropout = cfg
        t = time.time()
        xd = np.concatenate([inputs(S["train_mnist"], kind), inputs(S["train_canvas"], kind)])
        xd = xd[rng.choice(len(xd), min(nd, len(xd)), replace=False)]
        xn = np.concatenate([inputs(S[n], kind) for n in neg_names if n in S])
        head = train(
            np.concatenate([xd, xn]), np.r_[np.zeros(len(xd)), np.ones(len(xn))], hidden, epochs, dropout=dropout
        )
        s = {n: head(inputs(S[n], kind)) for n in names[2:]}
        sd = np.r_[s["val_mnist"], s["val_canvas"]]
        pd = np.r_[p["val_mnist"], p["val_canvas"]]
        t2 = threshold_for(sd, MAX_REFUSED_DIGITS)
        out = [f"{100 * (s[n] >= t2).mean():5.1f}" for n in ("val_neg", "val_neg2")]
        # best OR combination
        best = (0,)
        for k1 in range(MAX_REFUSED_DIGITS + 1):
            t1 = max(0.5, threshold_for(pd, k1))
            by = pd >= t1
            tt = threshold_for(sd[~by], MAX_REFUSED_DIGITS - int(by.sum()))
            c = [((p[n] >= t1) | (s[n] >= tt)).mean() for n in ("val_neg", "val_neg2")]
            if np.mean(c) > best[0]:
                best = (np.mean(c), *c)
        # at 10x the budget, for the separation curve
        t10 = threshold_for(sd, 10 * MAX_REFUSED_DIGITS)
        print(
            f"{str(cfg):90s} alone {out} OR {100 * best[1]:5.1f} {100 * best[2]:5.1f}  "
            f"@0.5%: {100 * (s['val_neg'] >= t10).mean():5.1f} {100 * (s['val_neg2'] >= t10).mean():5.1f}"
            f"  ({time.time() - t:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    A, B = ["train_neg"], ["train_neg", "train_neg2"]
    main(
        [
            ("pen+logp", (64,), 30, 40000, B, 0.0),
            ("flat+pen+logp", (64,), 30, 40000, B, 0.0),
            ("pen+logp", (256,), 30, 40000, B, 0.3),
            ("pen+logp", (64,), 30, 108000, B, 0.0),
            ("logp", (32,), 30, 40000, B, 0.0),
            ("pen", (64,), 30, 40000, B, 0.0),
        ]
    )
