/**
 * The ready structure of one queue of the memory store: a FIFO bucket per
 * priority (consumed from a head index, so a claim is O(1) amortised however
 * deep the queue) and a list of not-yet-due entries sorted by `at`, promoted
 * into the buckets when due. Deletion is lazy: an entry whose job has moved
 * on is dropped when it reaches a head (the caller says which are valid).
 */
export interface ReadyEntry {
  id: string;
  priority: number;
  /** global enqueue sequence: FIFO within a priority, and the entry's identity */
  seq: number;
  /** not claimable before this instant (ms) */
  at: number;
}

interface Bucket {
  entries: ReadyEntry[];
  head: number;
}

export class ReadyQueue {
  private readonly buckets = new Map<number, Bucket>();
  /** priorities that have a bucket, highest first */
  private priorities: number[] = [];
  private readonly delayed: ReadyEntry[] = [];

  push(entry: ReadyEntry, now: number): void {
    if (entry.at > now) {
      let lo = 0;
      let hi = this.delayed.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (this.delayed[mid]!.at <= entry.at) lo = mid + 1;
        else hi = mid;
      }
      this.delayed.splice(lo, 0, entry);
      return;
    }
    let bucket = this.buckets.get(entry.priority);
    if (!bucket) {
      bucket = { entries: [], head: 0 };
      this.buckets.set(entry.priority, bucket);
      this.priorities.push(entry.priority);
      this.priorities.sort((a, b) => b - a);
    }
    bucket.entries.push(entry);
  }

  /** Move due entries into their buckets; returns when the next one is due (or Infinity). */
  promote(now: number): number {
    let due = 0;
    while (due < this.delayed.length && this.delayed[due]!.at <= now) due++;
    if (due > 0) for (const entry of this.delayed.splice(0, due)) this.push(entry, now);
    return this.delayed[0]?.at ?? Infinity;
  }

  /** The best valid due entry, dropping invalid heads on the way. */
  peek(valid: (entry: ReadyEntry) => boolean): ReadyEntry | null {
    for (let i = 0; i < this.priorities.length; i++) {
      const priority = this.priorities[i]!;
      const bucket = this.buckets.get(priority)!;
      while (bucket.head < bucket.entries.length && !valid(bucket.entries[bucket.head]!)) bucket.head++;
      if (bucket.head < bucket.entries.length) return bucket.entries[bucket.head]!;
      this.buckets.delete(priority);
      this.priorities.splice(i--, 1);
    }
    return null;
  }

  /** Remove the head of a priority's bucket (the entry `peek` returned). */
  shift(priority: number): void {
    const bucket = this.buckets.get(priority);
    if (!bucket) return;
    bucket.head++;
    if (bucket.head > 1024 && bucket.head * 2 > bucket.entries.length) {
      bucket.entries = bucket.entries.slice(bucket.head);
      bucket.head = 0;
    }
  }

  /** Drop every entry that is no longer valid (jobs canceled while queued); true when nothing is left. */
  compact(valid: (entry: ReadyEntry) => boolean): boolean {
    for (const [priority, bucket] of this.buckets) {
      bucket.entries = bucket.entries.slice(bucket.head).filter(valid);
      bucket.head = 0;
      if (bucket.entries.length === 0) this.buckets.delete(priority);
    }
    this.priorities = this.priorities.filter((p) => this.buckets.has(p));
    const keep = this.delayed.filter(valid);
    this.delayed.length = 0;
    this.delayed.push(...keep);
    return this.buckets.size === 0 && this.delayed.length === 0;
  }
}
