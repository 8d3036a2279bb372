// Operator jobs: list them, run one, and follow an asynchronous render.
import { PyexecClient, type JobResult } from "@pyexec/client";

const client = new PyexecClient({ baseUrl: "http://127.0.0.1:3002", timeoutMs: 11 * 60_000 });

export async function renderOrder(orderId: string): Promise<JobResult["outputs"]> {
  const jobs = await client.jobs.list();
  const notReady = jobs.filter((j) => !j.readiness.ready).map((j) => `${j.name}: ${j.readiness.problems.join("; ")}`);
  if (notReady.length) throw new Error(notReady.join("\n"));

  const composed = await client.jobs.run("compose", {
    template: "/srv/pyexec/templates/shirt.png",
    design: `/srv/pyexec/uploads/${orderId}.png`,
    preset: "chest-large",
    output: `/srv/pyexec/composed/${orderId}.png`,
  });
  if (composed.status !== "ok") throw new Error(composed.message ?? composed.status);

  const render = await client.jobs.runAsync(
    "render",
    { blend: "/srv/pyexec/templates/shirt.blend", texture: composed.outputs[0]?.path ?? "", outdir: `/srv/pyexec/renders/${orderId}`, samples: 64 },
    { idempotencyKey: `render-${orderId}`, onProgress: (s) => console.log(`render ${Math.round((s.progress ?? 0) * 100)}%`) },
  );
  return render.outputs;
}
