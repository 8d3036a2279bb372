// Code written for the original executor: only the import changes.
import { PythonExecutor } from "@pyexec/client";

const executor = new PythonExecutor({ timeout: 5000, memoryLimit: 128, enableSandbox: true });

export async function main(): Promise<void> {
  const env = await executor.validatePythonEnvironment();
  if (!env.valid) console.warn(env.problems.join("\n"));

  const result = await executor.execute({ code: "print(sum(range(10)))" });
  console.log(result.output, result.status, result.exitCode);

  const composed = await executor.executeCompose({
    templatePath: "/srv/pyexec/templates/shirt.png",
    designPath: "/srv/pyexec/uploads/order-1.png",
    preset: "chest-large",
    outputPath: "/srv/pyexec/composed/order-1.png",
  });
  if (!composed.success || composed.outputPath === undefined) throw new Error(composed.error);

  const rendered = await executor.executeRender({
    blendFile: "/srv/pyexec/templates/shirt.blend",
    texturePath: composed.outputPath,
    outputDir: "/srv/pyexec/renders/order-1",
    samples: 64,
    skipAnimation: false,
  });
  console.log(rendered.success, rendered.renderPath, rendered.animationPath, rendered.error);
}
