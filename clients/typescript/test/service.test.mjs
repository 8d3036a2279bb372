// The client against a real `pyexec serve` (no rate limit, the test jobs).
import assert from "node:assert/strict";
import { readFileSync, rmSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { PyexecClient, PyexecError, PythonExecutor, submissionResult } from "../dist/index.js";
import { makeJobs } from "./fixtures.mjs";
import { serve } from "./serve.mjs";

let srv;
let client;
let jobs;

before(async () => {
  jobs = makeJobs();
  srv = await serve({ RATE_LIMIT_MAX: 0, JOBS_FILE: jobs.file });
  client = new PyexecClient({ baseUrl: srv.baseUrl });
});

after(async () => {
  const code = await srv?.stop();
  assert.equal(code, 0, `pyexec serve exited ${code}`);
  rmSync(jobs.dir, { recursive: true, force: true });
});

describe("execute", () => {
  it("returns the result of a program that ran", async () => {
    const r = await client.execute({ code: "print(input()[::-1])", stdin: "olleh", exerciseId: "rev-1" });
    assert.equal(r.status, "ok");
    assert.equal(r.stdout, "hello\n");
    assert.equal(r.output, "hello\n");
    assert.equal(r.exitCode, 0);
    assert.equal(r.exerciseId, "rev-1");
    assert.equal(r.limits.timeoutMs, 10000);
    assert.match(r.id, /^[0-9a-f]{32}$/);
  });

  it("returns a runtime error as a result, not an exception", async () => {
    const r = await client.execute({ code: "import sys\nprint('x', file=sys.stderr)\nsys.exit(3)" });
    assert.equal(r.status, "runtime_error");
    assert.equal(r.exitCode, 3);
    assert.equal(r.stderr, "x\n");
    assert.equal(r.message, "exited with code 3: x");
  });

  it("reports a timeout", async () => {
    const r = await client.execute({ code: "while True: pass", timeout: 300 });
    assert.equal(r.status, "timeout");
    assert.equal(r.limits.timeoutMs, 300);
  });

  it("sends every request field: files, args, policy, tests", async () => {
    const r = await client.execute({
      code: "import sys, helper\nn = int(input())\nprint(helper.square(n), *sys.argv[1:])",
      files: [{ name: "helper.py", content: "def square(n):\n    return n * n\n" }],
      args: ["a"],
      policy: "education",
      memoryLimit: 64,
      maxOutput: 1000,
      cpuTimeout: 2000,
      tests: [
        { name: "two", stdin: "2", expectedOutput: "4 a" },
        { stdin: "3", expectedOutput: "10 a" },
      ],
      totalTimeout: 20000,
    });
    assert.equal(r.verdict, "wrong_answer");
    assert.deepEqual(r.summary, { passed: 1, failed: 1, total: 2 });
    assert.equal(r.tests?.[0]?.status, "passed");
    assert.deepEqual(r.tests?.[1]?.difference, { line: 1, expected: "10 a", actual: "9 a" });
    assert.equal(r.limits.memoryMb, 64);
  });

  it("grades runTests with the test program", async () => {
    const r = await client.execute({
      code: "def add(a, b):\n    return a + b\n",
      runTests: true,
      testCode: "from starter import add\nassert add(2, 3) == 5\nprint('add works')",
    });
    assert.equal(r.verdict, "accepted");
    assert.equal(r.stdout, "add works\n");
  });

  it("refuses bad input with a PyexecError naming the field", async () => {
    await assert.rejects(client.execute({ code: "print(1)", timeout: 999999 }, { requestId: "ts-bad-1" }), (e) => {
      assert.ok(e instanceof PyexecError);
      assert.equal(e.status, 400);
      assert.equal(e.code, "invalid_request");
      assert.equal(e.field, "timeout");
      assert.match(e.message, /timeout must be between 1 and 10000/);
      assert.equal(e.requestId, "ts-bad-1");
      return true;
    });
    await assert.rejects(client.execute({ code: "print(1)", timeOut: 5 }), { status: 400, field: "timeOut" });
    await assert.rejects(client.execute({ code: "1", policy: "nope" }), { status: 400, field: "policy" });
  });

  it("carries the request id into the result", async () => {
    const r = await client.execute({ code: "print(1)" }, { requestId: "lab-7.run:1" });
    assert.equal(r.id, "lab-7.run:1");
  });

  it("gives up at its own time limit with code timeout", async () => {
    await assert.rejects(client.execute({ code: "import time\ntime.sleep(5)" }, { timeoutMs: 300 }), {
      name: "PyexecError",
      code: "timeout",
      status: 0,
    });
  });

  it("rejects with the caller's reason when aborted", async () => {
    const c = new AbortController();
    const p = client.execute({ code: "import time\ntime.sleep(5)" }, { signal: c.signal });
    setTimeout(() => c.abort(new Error("caller gave up")), 100);
    await assert.rejects(p, { message: "caller gave up" });
  });
});

describe("executeStream", () => {
  it("hands each piece of output over as the program writes it, then the result", async () => {
    const out = [];
    const err = [];
    const r = await client.executeStream(
      { code: "import sys\nprint('one', flush=True)\nprint('warn', file=sys.stderr, flush=True)\nprint('two')" },
      { onStdout: (t) => out.push(t), onStderr: (t) => err.push(t) },
    );
    assert.equal(r.status, "ok");
    assert.equal(out.join(""), "one\ntwo\n");
    assert.equal(out.join(""), r.stdout);
    assert.equal(err.join(""), "warn\n");
  });

  it("reads the stream as it arrives: the first event comes while the program still runs", async () => {
    // The program prints, then sleeps far longer than the test waits: the
    // first event can only be seen if the body is read incrementally. The
    // caller then aborts, which ends the run.
    const c = new AbortController();
    const seen = [];
    const started = Date.now();
    const p = client.executeStream(
      { code: "import time\nprint('first', flush=True)\ntime.sleep(60)\nprint('never')", timeout: 10000 },
      {
        signal: c.signal,
        onStdout: (t) => {
          seen.push(t);
          c.abort(new Error("seen the first line"));
        },
      },
    );
    await assert.rejects(p, { message: "seen the first line" });
    assert.deepEqual(seen, ["first\n"]);
    assert.ok(Date.now() - started < 10000, "the first event came only with the end of the run");
  });

  it("returns a refusal before the stream as a PyexecError", async () => {
    await assert.rejects(client.executeStream({ code: "print(1)", tests: [{ expectedOutput: "1" }] }), {
      status: 400,
      field: "tests",
    });
  });

  it("reports a timeout in the result event", async () => {
    const r = await client.executeStream({ code: "print('a', flush=True)\nwhile True: pass", timeout: 300 });
    assert.equal(r.status, "timeout");
    assert.equal(r.stdout, "a\n");
  });
});

describe("submissions", () => {
  it("queues a batch with an idempotency key, waits, and reads the results", async () => {
    const key = `batch-${Date.now()}`;
    const batch = [
      { code: "print(6 * 7)", exerciseId: "ex-1" },
      { code: "raise SystemExit(4)" },
      { code: "print(input())", stdin: "third" },
    ];
    const queued = await client.submissions.create(batch, { idempotencyKey: key });
    assert.equal(queued.length, 3);
    for (const s of queued) assert.match(s.id, /^[0-9a-f]{32}$/);
    const again = await client.submissions.create(batch, { idempotencyKey: key });
    assert.deepEqual(
      again.map((s) => s.id),
      queued.map((s) => s.id),
    );
    const done = await client.submissions.waitFor(queued.map((s) => s.id), { timeoutMs: 60000, intervalMs: 50 });
    assert.deepEqual(
      done.map((s) => s.state),
      ["done", "done", "done"],
    );
    const [a, b, c] = done.map((s) => submissionResult(s));
    assert.equal(a.stdout, "42\n");
    assert.equal(a.exerciseId, "ex-1");
    assert.equal(b.status, "runtime_error");
    assert.equal(b.exitCode, 4);
    assert.equal(c.stdout, "third\n");
    const one = await client.submissions.get(queued[0].id);
    assert.equal(one.state, "done");
    const many = await client.submissions.getMany([queued[2].id, "0".repeat(32)]);
    assert.deepEqual(
      many.map((s) => s.state),
      ["done", "unknown"],
    );
  });

  it("the same key with another body is refused", async () => {
    const key = `reuse-${Date.now()}`;
    await client.submissions.create({ code: "print(1)" }, { idempotencyKey: key });
    await assert.rejects(client.submissions.create({ code: "print(2)" }, { idempotencyKey: key }), {
      status: 409,
      code: "idempotency_key_reused",
    });
  });

  it("waits on the server with wait", async () => {
    const s = await client.submissions.create({ code: "print('waited')" }, { wait: 20000 });
    assert.equal(s.state, "done");
    assert.equal(s.httpStatus, 200);
    assert.equal(submissionResult(s).stdout, "waited\n");
  });

  it("names the field of an invalid member of a batch", async () => {
    await assert.rejects(client.submissions.create([{ code: "1" }, { code: "1", timeout: 0 }]), {
      status: 400,
      field: "submissions[1].timeout",
    });
  });

  it("an unknown id is not_found", async () => {
    await assert.rejects(client.submissions.get("f".repeat(32)), { status: 404, code: "not_found" });
    await assert.rejects(client.submissions.waitFor("f".repeat(32)), { code: "not_found" });
  });
});

describe("jobs", () => {
  it("lists the jobs and their parameters", async () => {
    const list = await client.jobs.list();
    const names = list.map((j) => j.name).sort();
    assert.deepEqual(names, ["compose", "render", "slow"]);
    const compose = list.find((j) => j.name === "compose");
    assert.deepEqual(Object.keys(compose.params).sort(), ["design", "output", "preset", "template"]);
    assert.equal(compose.params.preset.type, "enum");
    assert.equal(compose.readiness.ready, true);
  });

  it("runs a job and lists its outputs", async () => {
    const r = await client.jobs.run("compose", {
      template: jobs.path("templates/shirt.png"),
      design: jobs.path("uploads/logo.png"),
      preset: "chest-large",
      output: jobs.path("composed/run.png"),
    });
    assert.equal(r.status, "ok");
    assert.equal(r.job, "compose");
    assert.deepEqual(
      r.outputs.map((o) => o.path),
      [jobs.path("composed/run.png")],
    );
    assert.equal(readFileSync(jobs.path("composed/run.png"), "utf8"), "template+design@chest-large");
  });

  it("refuses a bad parameter with its field", async () => {
    await assert.rejects(client.jobs.run("compose", { preset: "sleeve" }), {
      status: 400,
      code: "invalid_parameter",
    });
    await assert.rejects(client.jobs.run("print", {}), { status: 404, code: "not_found" });
  });

  it("runs a job asynchronously and reports its progress", async () => {
    const progress = [];
    const states = [];
    const r = await client.jobs.runAsync(
      "slow",
      { seconds: 3 },
      {
        intervalMs: 50,
        maxIntervalMs: 200,
        onProgress: (s) => {
          states.push(s.state);
          if (s.progress !== undefined) progress.push(s.progress);
        },
      },
    );
    assert.equal(r.status, "ok");
    assert.equal(r.job, "slow");
    assert.equal(r.stdout, "slow done\n");
    assert.equal(states.at(-1), "done");
    assert.deepEqual([...new Set(progress)], [0.5]);
  });
});

describe("service state", () => {
  it("health, readiness and the environment", async () => {
    const h = await client.health();
    assert.equal(h.status, "ok");
    assert.equal(h.ready, true);
    assert.equal((await client.ready()).status, "ready");
    const env = await client.environment();
    assert.equal(env.ok, true);
    assert.ok(Array.isArray(env.problems));
    assert.equal(typeof env.version, "string");
  });
});

describe("PythonExecutor (the original interface)", () => {
  it("execute applies the constructor's limits and returns the original fields", async () => {
    const ex = new PythonExecutor({ timeout: 400, memoryLimit: 64, enableSandbox: true, baseUrl: srv.baseUrl });
    const r = await ex.execute({ code: "import sys\nprint('out')\nprint('err', file=sys.stderr)" });
    assert.equal(r.status, "ok");
    assert.equal(r.output, "out\nerr\n");
    assert.equal(r.stdout, "out\n");
    assert.equal(r.stderr, "err\n");
    assert.equal(r.limits.timeoutMs, 400);
    assert.equal(r.limits.memoryMb, 64);
    const own = await ex.execute({ code: "print(1)", timeout: 900 });
    assert.equal(own.limits.timeoutMs, 900);
  });

  it("executeCompose and executeRender run the jobs", async () => {
    const ex = new PythonExecutor({ baseUrl: srv.baseUrl });
    const c = await ex.executeCompose({
      templatePath: jobs.path("templates/shirt.png"),
      designPath: jobs.path("uploads/logo.png"),
      preset: "back-small",
      outputPath: jobs.path("composed/order.png"),
    });
    assert.deepEqual(c, { success: true, outputPath: jobs.path("composed/order.png") });
    const r = await ex.executeRender({
      blendFile: jobs.path("templates/shirt.blend"),
      texturePath: c.outputPath,
      outputDir: jobs.path("renders/order"),
      samples: 16,
    });
    assert.deepEqual(r, {
      success: true,
      renderPath: jobs.path("renders/order/order_render.png"),
      animationPath: jobs.path("renders/order/order_animation.mp4"),
    });
    const still = await ex.executeRender({
      blendFile: jobs.path("templates/shirt.blend"),
      texturePath: c.outputPath,
      outputDir: jobs.path("renders/still"),
      skipAnimation: true,
    });
    assert.deepEqual(still, { success: true, renderPath: jobs.path("renders/still/order_render.png") });
  });

  it("a refused job is success: false with the reason", async () => {
    const ex = new PythonExecutor({ baseUrl: srv.baseUrl });
    const c = await ex.executeCompose({
      templatePath: "/nonexistent/shirt.png",
      designPath: jobs.path("uploads/logo.png"),
      preset: "back-small",
      outputPath: jobs.path("composed/x.png"),
    });
    assert.equal(c.success, false);
    assert.match(c.error, /^invalid_parameter: .*\(params\.template\)$/);
  });

  it("validatePythonEnvironment reports the service and its jobs", async () => {
    const ex = new PythonExecutor({ baseUrl: srv.baseUrl });
    const v = await ex.validatePythonEnvironment();
    assert.deepEqual(v.problems, []);
    assert.equal(v.valid, true);
    assert.deepEqual(v.jobs, { compose: true, render: true, slow: true });
    const down = await new PythonExecutor({ baseUrl: "http://127.0.0.1:1" }).validatePythonEnvironment();
    assert.equal(down.valid, false);
    assert.match(down.problems[0], /^environment: network_error/);
  });
});
