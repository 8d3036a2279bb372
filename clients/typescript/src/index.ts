export {
  PyexecClient,
  Submissions,
  Jobs,
  submissionResult,
  type PyexecClientOptions,
  type CallOptions,
  type StreamOptions,
  type SubmitOptions,
  type WaitOptions,
  type JobSubmitOptions,
} from "./client.js";
export { PyexecError } from "./errors.js";
export { SseParser, type SseEvent } from "./sse.js";
export {
  verifyWebhook,
  signWebhook,
  WebhookVerificationError,
  type WebhookHeaders,
  type VerifyOptions,
} from "./webhook.js";
export {
  PythonExecutor,
  type PythonExecutorOptions,
  type ComposeRequest,
  type ComposeResult,
  type RenderRequest,
  type RenderResult,
  type EnvironmentStatus,
} from "./compat.js";
export type * from "./types.js";
