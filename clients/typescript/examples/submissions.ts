// Queue a class's submissions at once, then collect the results.
import { PyexecClient, submissionResult, type ExecuteResult, type SubmissionRequest } from "@pyexec/client";

const client = new PyexecClient({ baseUrl: "http://127.0.0.1:3002", retries: 3 });

export async function gradeAll(deadline: string, programs: Map<string, string>): Promise<Map<string, string>> {
  const students = [...programs.keys()];
  const batch: SubmissionRequest[] = students.map((s) => ({
    code: programs.get(s) ?? "",
    exerciseId: `${deadline}/${s}`,
    tests: [{ stdin: "2", expectedOutput: "4" }],
  }));
  // The same key after a lost answer gives the same ids, and lets the client retry a 429 or 503.
  const queued = await client.submissions.create(batch, { idempotencyKey: `deadline-${deadline}`, wait: 5000 });
  const done = await client.submissions.waitFor(
    queued.map((s) => s.id),
    { timeoutMs: 10 * 60_000, onProgress: (s) => console.log(s.id, s.state) },
  );
  const verdicts = new Map<string, string>();
  done.forEach((s, i) => {
    const r = submissionResult<ExecuteResult>(s);
    verdicts.set(students[i] ?? s.id, r.verdict ?? r.status);
  });
  return verdicts;
}
