/**
 * Paces one WebSocket connection's frames within the frame rate limit its worker announces in `welcome`
 * (`framesPerSecond`, `frameBurst`: protocol §1.1), so a queue of sends flushed on (re)connect is not refused
 * `rate_limited`. A token bucket with headroom: 4/5 of the rate and half the burst, for what the client cannot see
 * (frames sent apart that arrive together, the worker refilling its bucket ten times a second). Sends wait for a
 * token ({@link tryTake}); every other frame takes one if there is one ({@link debit}) and goes anyway (a join does not
 * wait behind a queue of sends), so the sends after it leave it room. After a `rate_limited` refusal ({@link drain})
 * no send goes until the worker has refilled its bucket once: it adds ⌈rate / 10⌉ tokens every ⌈rate / 10⌉ / rate
 * seconds (ten times a second from 10 frames a second up), so a send retried sooner would only be refused again.
 */
export class SendPacer {
  private readonly capacity: number;
  private readonly perMs: number;
  /** The worker's refill interval (ms), as its token bucket has it (TokenBuckets.PerSecond). */
  private readonly refillMs: number;
  private tokens: number;
  private last: number;
  /** No send before this time: the worker's bucket was empty, and it refills once per {@link refillMs}. */
  private holdUntil = Number.NEGATIVE_INFINITY;

  private constructor(framesPerSecond: number, frameBurst: number, private readonly now: () => number) {
    this.capacity = Math.max(1, Math.floor(frameBurst / 2));
    this.perMs = (framesPerSecond * 0.8) / 1000;
    this.refillMs = (Math.max(1, Math.ceil(framesPerSecond / 10)) / framesPerSecond) * 1000;
    this.tokens = this.capacity;
    this.last = now();
  }

  /** The pacer for a `welcome` payload; undefined when it says no frame rate (SSE, older workers). */
  static fromWelcome(welcome: Record<string, unknown>, now: () => number = monotonicNow): SendPacer | undefined {
    const rate = welcome.framesPerSecond;
    const burst = welcome.frameBurst;
    if (!isPositiveInteger(rate) || !isPositiveInteger(burst)) return undefined;
    return new SendPacer(rate, burst, now);
  }

  /** Takes a token for a send; false when there is none now (the send waits {@link msUntilNext}). */
  tryTake(): boolean {
    this.refill();
    if (this.tokens < 1 || this.last < this.holdUntil) return false;
    this.tokens -= 1;
    return true;
  }

  /** Another frame goes out: takes a token if there is one. */
  debit(): void {
    this.refill();
    this.tokens = Math.max(0, this.tokens - 1);
  }

  /**
   * The worker refused a frame `rate_limited`: its bucket is empty, so this one is too, and no send goes before the
   * worker's next refill (one refill interval from now: the refusal was sent before it came).
   */
  drain(): void {
    this.refill();
    this.tokens = 0;
    this.holdUntil = this.last + this.refillMs;
  }

  /** Milliseconds until a send may take a token (0: now). */
  msUntilNext(): number {
    this.refill();
    const hold = Math.max(0, this.holdUntil - this.last);
    return Math.ceil(Math.max(hold, this.tokens >= 1 ? 0 : (1 - this.tokens) / this.perMs));
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.capacity, this.tokens + (t - this.last) * this.perMs);
    this.last = t;
  }
}

function isPositiveInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 1;
}

function monotonicNow(): number {
  return globalThis.performance?.now() ?? Date.now();
}
