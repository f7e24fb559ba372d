"""Out-of-distribution scores from the trained model's features, thresholds on validation data (issue 12).

Needs .cache/refusal/ filled by experiments/refusal/ood_data.py and experiments/refusal/ood_features.py. Writes
experiments/refusal/results.json and prints a table. Nothing is fitted or chosen on the evaluation sets
(test_mnist, test_canvas, eval_neg): they are only scored once the thresholds are fixed.

Rule: at most MAX_REFUSED_DIGITS of the 12,000 validation digits (6,000 MNIST + 6,000 canvas drawings)
may be refused by a candidate (the same 0.05 % train_keras.py allows the calibrated threshold).
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
CACHE = ROOT / ".cache" / "refusal"  # ignored: rendered inputs and features (1.7 GB)
MAX_REFUSED_DIGITS = 6  # of 12,000 validation digits = 0.05 %
TEMPERATURE = json.loads((ROOT / "model" / "calibration.json").read_text())["temperature"]
REFUSE_AT = json.loads((ROOT / "model" / "calibration.json").read_text())["refuse_at"]


def feats(name):
    path = CACHE / f"feat_{name}.npz"
    return dict(np.load(path)) if path.exists() else None


def p_not_digit(prob):
    """Calibrated P(not a digit) (mnist_web.calibration.Calibration.apply)."""
    logits = np.log(np.maximum(prob.astype(np.float64), 1e-12)) / TEMPERATURE
    logits -= logits.max(1, keepdims=True)
    e = np.exp(logits)
    return e[:, 10] / e.sum(1)


# ---- scores (higher = more likely not a digit) -----------------------------------------------------


class Mahalanobis:
    """Class-conditional Gaussians with a shared (tied) covariance; optional relative version (Ren et al. 2021)."""

    def __init__(self, x, labels, relative=False, ridge=1e-6):
        x = x.astype(np.float64)
        self.means = np.stack([x[labels == c].mean(0) for c in range(10)])
        centred = x - self.means[labels]
        cov = centred.T @ centred / len(x)
        eps = ridge * np.trace(cov) / len(cov)
        self.precision = np.linalg.inv(cov + eps * np.eye(len(cov)))
        self.relative = relative
        if relative:
            self.mean0 = x.mean(0)
            c0 = (x - self.mean0).T @ (x - self.mean0) / len(x)
            self.precision0 = np.linalg.inv(c0 + ridge * np.trace(c0) / len(c0) * np.eye(len(c0)))

    def distances(self, x):
        x = x.astype(np.float64)
        xp = x @ self.precision
        d = (xp * x).sum(1)[:, None] - 2 * xp @ self.means.T + ((self.means @ self.precision) * self.means).sum(1)
        if self.relative:
            z = x - self.mean0
            d = d - ((z @ self.precision0) * z).sum(1)[:, None]
        return d

    def __call__(self, f, key):
        return self.distances(f[key]).min(1)


def energy(f):
    z = f["logits"][:, :10].astype(np.float64)
    m = z.max(1)
    return -(m + np.log(np.exp(z - m[:, None]).sum(1)))


def max_logit(f):
    return -f["logits"][:, :10].max(1).astype(np.float64)


class KNN:
    """Distance to the k-th nearest training digit of the L2-normalised penultimate features (Sun et al. 2022)."""

    def __init__(self, x, k=10, bank=20000, seed=0):
        pick = np.random.default_rng(seed).choice(len(x), min(bank, len(x)), replace=False)
        self.bank = self._norm(x[pick]).astype(np.float32)
        self.k = k

    @staticmethod
    def _norm(x):
        return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-8)

    def __call__(self, f, key="pen"):
        q = self._norm(f[key]).astype(np.float32)
        out = np.empty(len(q))
        for i in range(0, len(q), 2000):
            sims = q[i : i + 2000] @ self.bank.T
            out[i : i + 2000] = -np.partition(sims, -self.k, axis=1)[:, -self.k]
        return out


def head_inputs(f, kind="pen+logp"):
    logp = np.log(np.maximum(f["prob"].astype(np.float64), 1e-12))
    parts = {"pen+logp": [f["pen"], logp], "flat+pen+logp": [f["flat"], f["pen"], logp]}[kind]
    return np.concatenate([np.asarray(p, np.float64) for p in parts], axis=1)


class Head:
    """Digit vs not-a-digit on [features, log softmax]: logistic regression or a 1-hidden-layer MLP (keras).

    With several seeds, the average of their logits (a small ensemble: steadier in the far tail)."""

    def __init__(self, x, y, kind="pen+logp", hidden=0, epochs=30, seeds=(0,)):
        import keras

        self.kind = kind
        self.mu, self.sd = x.mean(0), x.std(0) + 1e-6
        x = ((x - self.mu) / self.sd).astype(np.float32)
        w = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean())).astype(np.float32)
        self.models = []
        for seed in seeds:
            keras.utils.set_random_seed(seed)
            layers = [keras.Input((x.shape[1],))]
            if hidden:
                layers.append(
                    keras.layers.Dense(hidden, activation="relu", kernel_regularizer=keras.regularizers.l2(1e-4))
                )
            layers.append(keras.layers.Dense(1, kernel_regularizer=keras.regularizers.l2(1e-4)))
            model = keras.Sequential(layers)
            model.compile(keras.optimizers.Adam(1e-3), keras.losses.BinaryCrossentropy(from_logits=True))
            model.fit(x, y.astype(np.float32), sample_weight=w, batch_size=512, epochs=epochs, verbose=0)
            self.models.append(model)

    def __call__(self, f):
        x = ((head_inputs(f, self.kind) - self.mu) / self.sd).astype(np.float32)
        return np.mean([m.predict(x, batch_size=4096, verbose=0)[:, 0] for m in self.models], axis=0).astype(np.float64)


# ---- thresholds on validation digits, evaluation -------------------------------------------------


def threshold_for(values, allowed):
    """The lowest threshold t with at most `allowed` values >= t."""
    s = np.sort(values)[::-1]
    if allowed >= len(s):
        return -np.inf
    return np.nextafter(s[allowed], np.inf)


def choose_combination(p_val_digits, s_val_digits, p_val_neg, s_val_neg):
    """(t1, t2): refuse if P >= t1 or s >= t2, at most MAX_REFUSED_DIGITS validation digits refused,
    the most validation negatives refused (t1 never under 0.5)."""
    best = None
    for k1 in range(MAX_REFUSED_DIGITS + 1):
        t1 = max(0.5, threshold_for(p_val_digits, k1))
        by_p = p_val_digits >= t1
        if by_p.sum() > MAX_REFUSED_DIGITS:
            continue
        t2 = threshold_for(s_val_digits[~by_p], MAX_REFUSED_DIGITS - int(by_p.sum()))
        caught = np.mean([((p >= t1) | (s >= t2)).mean() for p, s in zip(p_val_neg, s_val_neg, strict=False)])
        if best is None or caught > best[0]:
            best = (caught, t1, t2)
    return best[1], best[2]


def main():
    started = time.time()
    sets = {
        n: feats(n)
        for n in (
            "train_mnist",
            "train_canvas",
            "train_neg",
            "train_neg2",
            "train_neg3",
            "train_neg4",
            "val_mnist",
            "val_canvas",
            "val_neg",
            "val_neg2",
            "test_mnist",
            "test_canvas",
            "eval_neg",
        )
    }
    labels = {n: np.load(CACHE / f"labels_{n}.npy") for n in ("train", "val", "test")}
    canvas_meta = np.load(CACHE / "test_canvas.npz")
    eval_meta = np.load(CACHE / "eval_neg.npz")
    kinds, read = eval_meta["kinds"], eval_meta["read"]
    train_digits = {k: np.concatenate([sets["train_mnist"][k], sets["train_canvas"][k]]) for k in sets["train_mnist"]}
    train_labels = np.concatenate([labels["train"], labels["train"]])
    val_negs = [n for n in ("val_neg", "val_neg2") if sets[n] is not None]
    scored = ["val_mnist", "val_canvas", *val_negs, "test_mnist", "test_canvas", "eval_neg"]

    scores = {}  # candidate -> set -> values

    def add(name, fn):
        t = time.time()
        scores[name] = {n: fn(sets[n]) for n in scored}
        print(f"  scored {name} in {time.time() - t:.0f} s", flush=True)

    for key, dim in (("pen", 256), ("flat", 1024)):
        md = Mahalanobis(train_digits[key], train_labels)
        add(f"mahalanobis_{key}{dim}", lambda f, md=md, key=key: md(f, key))
        rmd = Mahalanobis(train_digits[key], train_labels, relative=True)
        add(f"rel_mahalanobis_{key}{dim}", lambda f, rmd=rmd, key=key: rmd(f, key))
    add("energy", energy)
    add("max_logit", max_logit)
    knn = KNN(train_digits["pen"])
    add("knn_pen256_k10", knn)

    # heads: the training digits (MNIST + new canvas drawings) against training-side negatives only
    neg_sets = {
        "trainneg": ["train_neg", "train_neg4"],
        "trainneg+freehandlike": ["train_neg", "train_neg4", "train_neg2", "train_neg3"],
    }
    heads = [  # (name, inputs, hidden units, negatives, seeds)
        ("head_logreg_trainneg", "pen+logp", 0, "trainneg", (0,)),
        ("head_mlp64_trainneg", "pen+logp", 64, "trainneg", (0,)),
        ("head_logreg_trainneg+freehandlike", "pen+logp", 0, "trainneg+freehandlike", (0,)),
        ("head_mlp64_trainneg+freehandlike", "pen+logp", 64, "trainneg+freehandlike", (0,)),
        ("head_mlp64_flat_trainneg+freehandlike", "flat+pen+logp", 64, "trainneg+freehandlike", (0,)),
        ("head_mlp64x3_trainneg+freehandlike", "pen+logp", 64, "trainneg+freehandlike", (0, 1, 2)),
        ("head_mlp64x3_flat_trainneg+freehandlike", "flat+pen+logp", 64, "trainneg+freehandlike", (0, 1, 2)),
    ]
    for name, kind, hidden, tag, seeds in heads:
        names = [n for n in neg_sets[tag] if sets.get(n) is not None]
        xd = head_inputs(train_digits, kind)
        xn = np.concatenate([head_inputs(sets[n], kind) for n in names])
        t = time.time()
        head = Head(np.concatenate([xd, xn]), np.r_[np.zeros(len(xd)), np.ones(len(xn))], kind, hidden, seeds=seeds)
        print(
            f"  {name} ({len(xd)} digits, {len(xn)} negatives {names}) trained in {time.time() - t:.0f} s", flush=True
        )
        add(name, head)

    p = {n: p_not_digit(sets[n]["prob"]) for n in scored}
    pred = {n: sets[n]["prob"][:, :10].argmax(1) for n in scored}
    p_val_digits = np.r_[p["val_mnist"], p["val_canvas"]]

    def evaluate(name, refuse, thresholds):
        refuse = {n: refuse(n) for n in scored}
        accepted = canvas_meta["accepted"]
        eval_refused = refuse["eval_neg"] | ~read
        row = {
            "candidate": name,
            "thresholds": thresholds,
            "val_mnist_refused": int(refuse["val_mnist"].sum()),
            "val_canvas_refused": int(refuse["val_canvas"].sum()),
            "val_digit_refused_share": float(np.r_[refuse["val_mnist"], refuse["val_canvas"]].mean()),
            **{f"{n}_refused_share": float(refuse[n].mean()) for n in val_negs},
            "freehand_refused": float(eval_refused.mean()),
            "freehand_by_kind": {k: float(eval_refused[kinds == k].mean()) for k in dict.fromkeys(kinds)},
            "test_mnist_refused": float(refuse["test_mnist"].mean()),
            "test_mnist_accuracy": float(((pred["test_mnist"] == labels["test"]) & ~refuse["test_mnist"]).mean()),
            "test_canvas_refused": float(refuse["test_canvas"][accepted].mean()),
            "test_canvas_accuracy": float(
                ((pred["test_canvas"] == canvas_meta["labels"]) & ~refuse["test_canvas"] & accepted).mean()
            ),
        }
        return row

    rows = [
        evaluate("baseline P(not a digit) >= 0.9923", lambda n: p[n] >= REFUSE_AT, {"t1": REFUSE_AT}),
        evaluate("reference P(not a digit) >= 0.5 (breaks the rule)", lambda n: p[n] >= 0.5, {"t1": 0.5}),
    ]
    for name, s in scores.items():
        s_val_digits = np.r_[s["val_mnist"], s["val_canvas"]]
        t2 = threshold_for(s_val_digits, MAX_REFUSED_DIGITS)
        rows.append(evaluate(f"{name} alone", lambda n, s=s, t2=t2: s[n] >= t2, {"t2": float(t2)}))
        t1, t2 = choose_combination(p_val_digits, s_val_digits, [p[n] for n in val_negs], [s[n] for n in val_negs])
        rows.append(
            evaluate(
                f"P >= t1 OR {name} >= t2",
                lambda n, s=s, t1=t1, t2=t2: (p[n] >= t1) | (s[n] >= t2),
                {"t1": float(t1), "t2": float(t2)},
            )
        )
        # the AUROC-free view: the share of freehand refused at the validation rule, by the score alone
    (ROOT / "experiments" / "refusal" / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
    print(
        f"{'candidate':58s} {'val dig':>8s} "
        + " ".join(f"{n:>8s}" for n in val_negs)
        + f" {'freehand':>8s} {'mnist ref/acc':>14s} {'canvas ref/acc':>15s}"
    )
    for r in rows:
        print(
            f"{r['candidate'][:58]:58s} {r['val_mnist_refused']:>3d}+{r['val_canvas_refused']:<4d} "
            + " ".join(f"{100 * r[f'{n}_refused_share']:7.1f}%" for n in val_negs)
            + f" {100 * r['freehand_refused']:7.1f}% {100 * r['test_mnist_refused']:5.2f}/{100 * r['test_mnist_accuracy']:6.2f}"
            f" {100 * r['test_canvas_refused']:6.2f}/{100 * r['test_canvas_accuracy']:6.2f}"
        )
    write_markdown(rows, val_negs)
    print(f"done in {time.time() - started:.0f} s")


def write_markdown(rows, val_negs):
    """experiments/refusal/results_table.md: the table for RESULTS.md."""
    head = (
        "| candidate | threshold(s) | val digits refused (MNIST+canvas of 12,000) | "
        + " | ".join(f"{n} refused" for n in val_negs)
        + " | freehand refused (eval, 2,000) | MNIST test refused / accuracy | canvas set refused / accuracy |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        t = ", ".join(f"{k}={v:.6g}" for k, v in r["thresholds"].items())
        lines.append(
            f"| {r['candidate']} | {t} | {r['val_mnist_refused']}+{r['val_canvas_refused']} "
            f"({100 * r['val_digit_refused_share']:.3f} %) | "
            + " | ".join(f"{100 * r[f'{n}_refused_share']:.1f} %" for n in val_negs)
            + f" | **{100 * r['freehand_refused']:.1f} %** | {100 * r['test_mnist_refused']:.2f} % / "
            f"{100 * r['test_mnist_accuracy']:.2f} % | {100 * r['test_canvas_refused']:.2f} % / "
            f"{100 * r['test_canvas_accuracy']:.2f} % |"
        )
    (ROOT / "experiments" / "refusal" / "results_table.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
