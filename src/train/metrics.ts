// Evaluation metrics, computed on the host from predictions and labels.

export interface ClassificationReport {
  accuracy: number;
  /** Macro averages over classes that occur in labels or predictions. */
  precision: number;
  recall: number;
  f1: number;
  perClass: { label: number; precision: number; recall: number; f1: number; support: number }[];
  /** confusion[true][predicted] */
  confusion: number[][];
}

/** Accuracy, per-class and macro precision/recall/F1, and the confusion matrix. */
export function classificationReport(labels: readonly number[], predictions: readonly number[], numClasses: number): ClassificationReport {
  if (labels.length !== predictions.length) throw new RangeError(`${labels.length} labels but ${predictions.length} predictions`);
  const confusion = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
  labels.forEach((y, i) => confusion[y]![predictions[i]!]!++);
  const correct = labels.reduce((n, y, i) => n + (y === predictions[i] ? 1 : 0), 0);
  const perClass: ClassificationReport["perClass"] = [];
  for (let c = 0; c < numClasses; c++) {
    const tp = confusion[c]![c]!;
    const support = confusion[c]!.reduce((a, b) => a + b, 0);
    const predicted = confusion.reduce((a, row) => a + row[c]!, 0);
    if (support === 0 && predicted === 0) continue;
    const precision = predicted ? tp / predicted : 0;
    const recall = support ? tp / support : 0;
    perClass.push({ label: c, precision, recall, f1: precision + recall ? (2 * precision * recall) / (precision + recall) : 0, support });
  }
  const mean = (k: "precision" | "recall" | "f1") => (perClass.length ? perClass.reduce((a, p) => a + p[k], 0) / perClass.length : 0);
  return { accuracy: labels.length ? correct / labels.length : 0, precision: mean("precision"), recall: mean("recall"), f1: mean("f1"), perClass, confusion };
}

/**
 * Area under the ROC curve for binary labels (1 = positive) and scores, by the rank-sum
 * (Mann-Whitney) formula with tied scores sharing their average rank. NaN when only one class
 * is present.
 */
export function rocAuc(labels: readonly number[], scores: readonly number[]): number {
  const pos = labels.filter((y) => y === 1).length;
  const neg = labels.length - pos;
  if (pos === 0 || neg === 0) return NaN;
  const order = [...scores.keys()].sort((a, b) => scores[a]! - scores[b]!);
  let rankSum = 0;
  for (let i = 0; i < order.length; ) {
    let j = i;
    while (j + 1 < order.length && scores[order[j + 1]!] === scores[order[i]!]) j++;
    const avgRank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) if (labels[order[k]!] === 1) rankSum += avgRank;
    i = j + 1;
  }
  return (rankSum - (pos * (pos + 1)) / 2) / (pos * neg);
}

/**
 * Cumulative true/false positive counts at each distinct score threshold, from the highest
 * score down (tied scores form one threshold).
 */
function thresholdSweep(labels: readonly number[], scores: readonly number[]): { tp: number; fp: number }[] {
  const order = [...scores.keys()].sort((a, b) => scores[b]! - scores[a]!);
  const points: { tp: number; fp: number }[] = [];
  let tp = 0;
  let fp = 0;
  for (let i = 0; i < order.length; ) {
    let j = i;
    while (j + 1 < order.length && scores[order[j + 1]!] === scores[order[i]!]) j++;
    for (let k = i; k <= j; k++) (labels[order[k]!] === 1 ? tp++ : fp++);
    points.push({ tp, fp });
    i = j + 1;
  }
  return points;
}

/**
 * Area under the precision-recall curve as average precision (scikit-learn's definition):
 * sum over thresholds of (R_n - R_{n-1}) P_n. NaN without positives.
 */
export function averagePrecision(labels: readonly number[], scores: readonly number[]): number {
  const pos = labels.filter((y) => y === 1).length;
  if (pos === 0) return NaN;
  let prevRecall = 0;
  let ap = 0;
  for (const { tp, fp } of thresholdSweep(labels, scores)) {
    ap += (tp / pos - prevRecall) * (tp / (tp + fp));
    prevRecall = tp / pos;
  }
  return ap;
}

/** ROC curve points (fpr, tpr) at every distinct threshold, for plotting. */
export function rocCurve(labels: readonly number[], scores: readonly number[]): { fpr: number[]; tpr: number[] } {
  const pos = labels.filter((y) => y === 1).length;
  const neg = labels.length - pos;
  const points = thresholdSweep(labels, scores);
  return { fpr: [0, ...points.map((p) => (neg ? p.fp / neg : 0))], tpr: [0, ...points.map((p) => (pos ? p.tp / pos : 0))] };
}

/** Precision-recall curve points at every distinct threshold, for plotting. */
export function prCurve(labels: readonly number[], scores: readonly number[]): { recall: number[]; precision: number[] } {
  const pos = labels.filter((y) => y === 1).length;
  const points = thresholdSweep(labels, scores);
  return { recall: points.map((p) => (pos ? p.tp / pos : 0)), precision: points.map((p) => p.tp / (p.tp + p.fp)) };
}

/**
 * Token-level F1 for tagging: micro precision/recall over tokens whose gold or predicted tag is
 * not `outside` (e.g. the "O" tag id); ignored positions (label -100) are skipped.
 */
export function tokenF1(labels: readonly number[], predictions: readonly number[], outside: number): { precision: number; recall: number; f1: number } {
  let tp = 0;
  let predicted = 0;
  let gold = 0;
  labels.forEach((y, i) => {
    if (y === -100) return;
    const p = predictions[i]!;
    if (p !== outside) predicted++;
    if (y !== outside) gold++;
    if (y !== outside && p === y) tp++;
  });
  const precision = predicted ? tp / predicted : 0;
  const recall = gold ? tp / gold : 0;
  return { precision, recall, f1: precision + recall ? (2 * precision * recall) / (precision + recall) : 0 };
}

/** SQuAD's answer normalization: lowercase, no punctuation or articles, single spaces. */
export function normalizeAnswer(s: string): string {
  return s
    .toLowerCase()
    .replace(/[!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]/g, "")
    .replace(/\b(a|an|the)\b/g, " ")
    .split(/\s+/)
    .filter(Boolean)
    .join(" ");
}

/** SQuAD exact match and token F1 of one prediction against its best-matching reference. */
export function squadScores(prediction: string, references: readonly string[]): { exactMatch: number; f1: number } {
  const p = normalizeAnswer(prediction);
  let em = 0;
  let f1 = 0;
  for (const ref of references) {
    const r = normalizeAnswer(ref);
    em = Math.max(em, p === r ? 1 : 0);
    const pt = p.split(" ").filter(Boolean);
    const rt = r.split(" ").filter(Boolean);
    if (pt.length === 0 || rt.length === 0) {
      f1 = Math.max(f1, pt.length === rt.length ? 1 : 0);
      continue;
    }
    const counts = new Map<string, number>();
    for (const t of rt) counts.set(t, (counts.get(t) ?? 0) + 1);
    let common = 0;
    for (const t of pt) {
      const c = counts.get(t) ?? 0;
      if (c > 0) {
        common++;
        counts.set(t, c - 1);
      }
    }
    if (common === 0) continue;
    const precision = common / pt.length;
    const recall = common / rt.length;
    f1 = Math.max(f1, (2 * precision * recall) / (precision + recall));
  }
  return { exactMatch: em, f1 };
}

/** Perplexity from a mean token cross-entropy (natural log). */
export function perplexity(meanLoss: number): number {
  return Math.exp(meanLoss);
}
