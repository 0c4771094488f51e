// Errors a request can end with: an HTTP status and an OpenAI-style body
// (`{"error": {"message", "type", "code"}}`), so clients written for vLLM read them unchanged.

export class ServeError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type = status === 404 ? "NotFoundError" : status === 429 ? "RateLimitError" : status >= 500 ? "ServerError" : "BadRequestError",
    /** Extra response headers (Retry-After). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** The client went away: its work is dropped, nothing is answered. */
export class Cancelled extends Error {
  constructor() {
    super("the client disconnected");
  }
}
