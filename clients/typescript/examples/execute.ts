// Run a program, grade it with test cases, and handle refusals.
import { PyexecClient, PyexecError, type ExecuteResult } from "@pyexec/client";

const client = new PyexecClient({
  baseUrl: process.env.PYEXEC_URL ?? "http://127.0.0.1:3002",
  apiKey: process.env.PYEXEC_API_KEY,
  timeoutMs: 30_000,
});

export async function grade(code: string): Promise<string> {
  let r: ExecuteResult;
  try {
    r = await client.execute({
      code,
      policy: "education",
      files: [
        { name: "words.txt", content: "two\nthree\n" },
        { name: "blob.bin", contentBase64: btoa("\u0000\u0001\u00ff") },
      ],
      timeout: 2000,
      memoryLimit: 64,
      tests: [
        { name: "two", stdin: "2", expectedOutput: "4" },
        { name: "three", stdin: "3", expectedOutput: "9" },
      ],
    });
  } catch (e) {
    if (e instanceof PyexecError && e.status === 400) return `fix ${e.field ?? "the request"}: ${e.message}`;
    if (e instanceof PyexecError && e.retryAfter !== undefined) return `busy, try again in ${e.retryAfter} s`;
    throw e;
  }
  const failed = r.tests?.filter((t) => t.status !== "passed").map((t) => t.name) ?? [];
  return r.verdict === "accepted" ? "accepted" : `${r.verdict}: ${failed.join(", ")} (${r.message ?? ""})`;
}
