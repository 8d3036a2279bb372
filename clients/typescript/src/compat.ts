/**
 * The interface of the original executor package, on the pyexec service, so
 * code written for it moves over by changing its import:
 *
 *   import { PythonExecutor } from "@pyexec/client";
 *   const executor = new PythonExecutor({ timeout: 5000, memoryLimit: 128 });
 *   const r = await executor.execute({ code: "print(1)" });
 *   r.output, r.status, r.stdout, r.exitCode, ...
 */
import { PyexecClient } from "./client.js";
import { PyexecError } from "./errors.js";
import type { ExecuteRequest, ExecuteResult, JobResult } from "./types.js";

const DEFAULT_URL = "http://127.0.0.1:3002";
/** Jobs wait for their run without a limit of the client's: the job's own limit (a render's 10 minutes) ends it. */
const JOB_CALL = { timeoutMs: 0 };

function env(name: string): string | undefined {
  const p = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return p?.env?.[name] || undefined;
}

export interface PythonExecutorOptions {
  /** Each request's wall-clock limit in ms, unless it gives its own `timeout`. */
  timeout?: number;
  /** Each request's memory limit in MB, unless it gives its own `memoryLimit`. */
  memoryLimit?: number;
  /** Accepted for compatibility: pyexec always runs programs in its kernel sandbox. */
  enableSandbox?: boolean;
  /** The service (default $PYEXEC_URL, else http://127.0.0.1:3002). */
  baseUrl?: string;
  /** Default $PYEXEC_API_KEY. */
  apiKey?: string;
  /** A client to use instead of one made from baseUrl and apiKey. */
  client?: PyexecClient;
}

export interface ComposeRequest {
  templatePath: string;
  designPath: string;
  preset: string;
  outputPath: string;
}

export interface ComposeResult {
  success: boolean;
  outputPath?: string;
  error?: string;
}

export interface RenderRequest {
  blendFile: string;
  texturePath: string;
  outputDir: string;
  samples?: number;
  skipAnimation?: boolean;
}

export interface RenderResult {
  success: boolean;
  renderPath?: string;
  animationPath?: string;
  error?: string;
}

export interface EnvironmentStatus {
  /** The service can run programs and every job below is ready. */
  valid: boolean;
  /** What is not right, one line each. */
  problems: string[];
  /** Each job the service offers, and whether it is ready. */
  jobs: Record<string, boolean>;
  /** The service's version. */
  version?: string;
}

function describe(e: unknown): string {
  if (e instanceof PyexecError) return `${e.code}: ${e.message}` + (e.field ? ` (${e.field})` : "");
  return e instanceof Error ? e.message : String(e);
}

function failure(r: JobResult): string {
  return r.message ?? r.status;
}

export class PythonExecutor {
  readonly timeout: number | undefined;
  readonly memoryLimit: number | undefined;
  readonly enableSandbox = true;
  readonly client: PyexecClient;

  constructor(options: PythonExecutorOptions = {}) {
    this.timeout = options.timeout;
    this.memoryLimit = options.memoryLimit;
    this.client =
      options.client ??
      new PyexecClient({
        baseUrl: options.baseUrl ?? env("PYEXEC_URL") ?? DEFAULT_URL,
        apiKey: options.apiKey ?? env("PYEXEC_API_KEY"),
      });
  }

  /**
   * Runs a program: the result document (output, stdout, stderr, status,
   * exitCode, time, memory, ... and with tests: tests, summary, verdict).
   * A refused request rejects with a PyexecError.
   */
  async execute(request: ExecuteRequest): Promise<ExecuteResult> {
    const body: ExecuteRequest = { ...request };
    if (body.timeout === undefined && this.timeout !== undefined) body.timeout = this.timeout;
    if (body.memoryLimit === undefined && this.memoryLimit !== undefined) body.memoryLimit = this.memoryLimit;
    return this.client.execute(body);
  }

  /** The `compose` job. */
  async executeCompose(req: ComposeRequest): Promise<ComposeResult> {
    let r: JobResult;
    try {
      r = await this.client.jobs.run("compose", {
        template: req.templatePath,
        design: req.designPath,
        preset: req.preset,
        output: req.outputPath,
      }, JOB_CALL);
    } catch (e) {
      return { success: false, error: describe(e) };
    }
    if (r.status !== "ok") return { success: false, error: failure(r) };
    return { success: true, outputPath: r.outputs[0]?.path ?? req.outputPath };
  }

  /** The `render` job: the still, and the turntable unless skipAnimation. */
  async executeRender(req: RenderRequest): Promise<RenderResult> {
    let r: JobResult;
    try {
      r = await this.client.jobs.run("render", {
        blend: req.blendFile,
        texture: req.texturePath,
        outdir: req.outputDir,
        samples: req.samples ?? 128,
        no_animation: req.skipAnimation ?? false,
      }, JOB_CALL);
    } catch (e) {
      return { success: false, error: describe(e) };
    }
    if (r.status !== "ok") return { success: false, error: failure(r) };
    // The job names its outputs after the design ({design}_render.png,
    // {design}_animation.mp4) and gives their paths.
    const named = r as JobResult & { renderPath?: string | null; animationPath?: string | null };
    const out: RenderResult = { success: true };
    if (typeof named.renderPath === "string") out.renderPath = named.renderPath;
    if (typeof named.animationPath === "string") out.animationPath = named.animationPath;
    return out;
  }

  /**
   * Whether the service can run programs (its start-up self-test, GET
   * /api/environment) and its compose and render jobs are ready (GET /api/jobs).
   */
  async validatePythonEnvironment(): Promise<EnvironmentStatus> {
    const problems: string[] = [];
    const jobs: Record<string, boolean> = {};
    let version: string | undefined;
    try {
      const e = await this.client.environment();
      version = e.version;
      if (!e.ok) problems.push(...(e.problems.length ? e.problems : ["the service's self-test failed"]));
    } catch (e) {
      problems.push(`environment: ${describe(e)}`);
    }
    try {
      for (const j of await this.client.jobs.list()) {
        jobs[j.name] = j.readiness.ready;
        problems.push(...j.readiness.problems.map((p) => `job ${j.name}: ${p}`));
      }
      for (const name of ["compose", "render"])
        if (!(name in jobs)) problems.push(`job ${name}: not offered by the service`);
    } catch (e) {
      problems.push(`jobs: ${describe(e)}`);
    }
    const out: EnvironmentStatus = { valid: problems.length === 0, problems, jobs };
    if (version !== undefined) out.version = version;
    return out;
  }
}
