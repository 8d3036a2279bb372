import type { ErrorCode } from "./types.js";

/**
 * Anything the client could not turn into a result: a refusal by the service
 * (status is its HTTP status, code its error.code), or a failure on the way
 * (status 0, code "timeout", "network_error" or "invalid_response").
 * A caller's own AbortSignal rejects with the signal's reason instead.
 */
export class PyexecError extends Error {
  /** The HTTP status; 0 when no response was received. */
  readonly status: number;
  /** The service's error.code, or "timeout", "network_error", "invalid_response". */
  readonly code: ErrorCode | "timeout" | "network_error" | "invalid_response";
  /** The request field at fault (`timeout`, `files[2].name`, `params.blend`), when one is. */
  readonly field: string | undefined;
  /** The X-Request-Id of the response (the id of the service's log lines). */
  readonly requestId: string | undefined;
  /** Seconds to wait before trying again (Retry-After), when the service said. */
  readonly retryAfter: number | undefined;

  constructor(
    message: string,
    init: {
      status: number;
      code: PyexecError["code"];
      field?: string | undefined;
      requestId?: string | undefined;
      retryAfter?: number | undefined;
      cause?: unknown;
    },
  ) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = "PyexecError";
    this.status = init.status;
    this.code = init.code;
    this.field = init.field;
    this.requestId = init.requestId;
    this.retryAfter = init.retryAfter;
  }
}
