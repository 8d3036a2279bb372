// Show a program's output as it runs; stop it with an AbortSignal.
import { PyexecClient } from "@pyexec/client";

const client = new PyexecClient({ baseUrl: "http://127.0.0.1:3002" });

export async function runLive(code: string, signal: AbortSignal): Promise<number | null> {
  const result = await client.executeStream(
    { code, timeout: 10_000 },
    {
      signal,
      onStdout: (text) => process.stdout.write(text),
      onStderr: (text) => process.stderr.write(text),
    },
  );
  console.log(`\n${result.status} in ${result.time.wallMs} ms`);
  return result.exitCode;
}
