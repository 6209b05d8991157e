/** The public surface of reasonq. */
export { createClient, type Client, type ClientOptions, type AgentIntentOptions, type EventsOptions } from './client.js';
export { LIFECYCLE_EVENTS, TRIMMED, type JobEvent, type NewEvent, type EventPage, type ReadEventsOptions, type Usage } from './events.js';
export { createWorker, Worker, JobAbortError, type Handler, type HandlerContext, type WorkerOptions, type JobOutcome } from './worker.js';
export { createServer, type ServerOptions } from './server/app.js';
export { createTransport } from './transports.js';
export { retryMany, RETRY_MANY_MAX, type RetryManyRequest, type RetryManyResult, type RetryManySkip } from './retry-many.js';
export { RUNS_MAX, type RunRecord, type RunEndLabel } from './runs.js';
export { migrate, verifyMigration, type MigrateOptions, type MigrateSummary, type MigrateProgress, type VerifyReport } from './migrate.js';
export { withFallback } from './fallback.js';
export { loadConfig, loadLlmConfig, DEFAULTS, type Config, type LlmConfig, type TransportName } from './config.js';
export * from './errors.js';
export {
  buildJob,
  intentSchema,
  intentRequestSchema,
  isTerminal,
  JOB_STATUSES,
  type Intent,
  type IntentRequest,
  type Job,
  type JobError,
  type JobStatus,
  type EnqueueOptions,
  type TraceCarrier,
} from './job.js';
export type * from './transport.js';
export { createDemoHandler, demoHandler, reason } from './reasoner.js';
export { createOpenAIHandler, type OpenAIHandler, type OpenAIHandlerOptions } from './reasoners/openai.js';
export { createLogger, pickLogFormat, LOG_FORMATS, type LogFormat, type LoggerOptions } from './logger.js';
export { verifyCallback, createReplayGuard, generateSecret, CallbackVerificationError, type ReplayGuard, type VerifyOptions } from './webhooks.js';
export { createCallbackSender, type CallbackSender, type CallbackConfig } from './callbacks.js';
