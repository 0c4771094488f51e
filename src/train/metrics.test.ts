// Metrics against hand-computed values, including ties and degenerate cases.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { clipGradNorm, globalNorm } from "./grad-clip.js";
import { averagePrecision, classificationReport, perplexity, rocAuc, rocCurve, squadScores, tokenF1 } from "./metrics.js";
import { learningRate } from "./schedule.js";

const close = (a: number, b: number, tol = 1e-12) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

describe("metrics", () => {
  it("classification report: accuracy, per-class and macro P/R/F1, confusion", () => {
    const r = classificationReport([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0], 3);
    close(r.accuracy, 4 / 6);
    assert.deepEqual(r.confusion, [[1, 1, 0], [0, 2, 0], [1, 0, 1]]);
    // class 0: P 1/2 R 1/2; class 1: P 2/3 R 1; class 2: P 1 R 1/2
    close(r.precision, (1 / 2 + 2 / 3 + 1) / 3);
    close(r.recall, (1 / 2 + 1 + 1 / 2) / 3);
    close(r.perClass[1]!.f1, (2 * (2 / 3) * 1) / (2 / 3 + 1));
    assert.equal(classificationReport([], [], 2).accuracy, 0);
  });

  it("ROC-AUC: perfect, inverted, ties, single class", () => {
    close(rocAuc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]), 1);
    close(rocAuc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]), 0);
    close(rocAuc([0, 1], [0.5, 0.5]), 0.5, 1e-12);
    // pos scores {0.4, 0.7}, neg {0.4, 0.1}: pairs (0.4,0.4)=0.5, (0.4,0.1)=1, (0.7,*)=1,1 -> 3.5/4
    close(rocAuc([1, 1, 0, 0], [0.4, 0.7, 0.4, 0.1]), 3.5 / 4);
    assert.ok(Number.isNaN(rocAuc([1, 1], [0.2, 0.3])));
    const curve = rocCurve([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]);
    assert.deepEqual(curve.tpr.at(-1), 1);
    assert.deepEqual(curve.fpr.at(-1), 1);
  });

  it("average precision (PR-AUC): scikit-learn's values", () => {
    // sklearn.metrics.average_precision_score([0,0,1,1],[0.1,0.4,0.35,0.8]) = 0.8333...
    close(averagePrecision([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]), 0.8333333333333333);
    close(averagePrecision([1, 0], [0.5, 0.5]), 0.5);
    assert.ok(Number.isNaN(averagePrecision([0, 0], [0.1, 0.2])));
  });

  it("token F1 skips ignored positions and the outside tag", () => {
    const r = tokenF1([0, 1, 2, -100, 1], [0, 1, 1, 2, 0], 0);
    // gold non-O: 3 (1, 2, 1); predicted non-O: 2 (1, 1); correct: 1
    close(r.precision, 1 / 2);
    close(r.recall, 1 / 3);
  });

  it("SQuAD exact match and F1", () => {
    assert.deepEqual(squadScores("The Eiffel Tower!", ["eiffel tower"]), { exactMatch: 1, f1: 1 });
    const s = squadScores("in the river bank", ["the bank"]);
    assert.equal(s.exactMatch, 0);
    close(s.f1, (2 * (1 / 3) * 1) / (1 / 3 + 1));
    assert.deepEqual(squadScores("", [""]), { exactMatch: 1, f1: 1 });
    close(perplexity(Math.log(20)), 20, 1e-9);
  });
});

describe("schedules and clipping", () => {
  it("linear and cosine schedules follow transformers' curves", () => {
    const lin = { kind: "linear" as const, lr: 1, warmupSteps: 10, totalSteps: 110 };
    assert.deepEqual([0, 5, 10, 60, 110, 200].map((s) => learningRate(lin, s)), [0, 0.5, 1, 0.5, 0, 0]);
    const cos = { kind: "cosine" as const, lr: 2, warmupSteps: 0, totalSteps: 100 };
    close(learningRate(cos, 0), 2);
    close(learningRate(cos, 50), 1, 1e-12);
    close(learningRate(cos, 100), 0, 1e-12);
    assert.equal(learningRate({ kind: "constant", lr: 3, warmupSteps: 4 }, 2), 1.5);
    assert.throws(() => learningRate({ kind: "linear", lr: 1 }, 0), /needs totalSteps/);
  });

  it("clipping bounds the global norm and leaves small gradients alone", () => {
    const g = [{ dtype: "float32" as const, shape: [2], data: Float32Array.of(3, 0) }, { dtype: "float32" as const, shape: [1], data: Float32Array.of(4) }];
    assert.equal(clipGradNorm(g, 1), 5);
    close(globalNorm(g), 1, 1e-5);
    const small = [{ dtype: "float32" as const, shape: [1], data: Float32Array.of(0.5) }];
    clipGradNorm(small, 1);
    assert.equal(small[0]!.data[0], 0.5);
  });
});
