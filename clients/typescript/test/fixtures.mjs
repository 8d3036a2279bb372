// A jobs file for the tests: compose and render with the shipped jobs'
// parameters (scripts that copy files instead of drawing), and a job that
// reports progress.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "./serve.mjs";

export function makeJobs() {
  const dir = tempDir("pyexec-ts-jobs-");
  for (const d of ["templates", "uploads", "composed", "renders"]) mkdirSync(join(dir, d));
  writeFileSync(join(dir, "templates", "shirt.png"), "template");
  writeFileSync(join(dir, "templates", "shirt.blend"), "blend");
  writeFileSync(join(dir, "uploads", "logo.png"), "design");
  writeFileSync(
    join(dir, "compose.py"),
    [
      "import sys",
      "template, design, preset, output = sys.argv[1:5]",
      "data = open(template, 'rb').read() + b'+' + open(design, 'rb').read() + b'@' + preset.encode()",
      "open(output, 'wb').write(data)",
      "print('composed preset=' + preset)",
      "",
    ].join("\n"),
  );
  writeFileSync(
    join(dir, "render.py"),
    [
      "import os, sys",
      "blend, texture, outdir, samples, still, anim = sys.argv[1:7]",
      "open(os.path.join(outdir, still), 'wb').write(open(texture, 'rb').read())",
      "if '--no-animation' not in sys.argv[7:]:",
      "    open(os.path.join(outdir, anim), 'wb').write(b'mp4')",
      "print('render_design: ok samples=' + samples)",
      "",
    ].join("\n"),
  );
  writeFileSync(
    join(dir, "slow.py"),
    [
      "import sys, time",
      "print('PYEXEC_PROGRESS 1/2', file=sys.stderr, flush=True)",
      "time.sleep(int(sys.argv[1]))",
      "print('slow done')",
      "",
    ].join("\n"),
  );
  const p = (name) => join(dir, name);
  writeFileSync(
    join(dir, "jobs.yaml"),
    `jobs:
  compose:
    description: copies the template and design into the output
    interpreter: /usr/bin/python3
    script: compose.py
    args: ["{script}", "{template}", "{design}", "{preset}", "{output}"]
    params:
      template: {type: input_file, roots: [${p("templates")}], extensions: [png]}
      design: {type: input_file, roots: [${p("uploads")}], extensions: [png]}
      preset: {type: enum, values: [chest-large, back-small]}
      output: {type: output_file, roots: [${p("composed")}], extensions: [png]}
  render:
    description: copies the texture into DESIGN_render.png, as the shipped render job names its outputs
    interpreter: /usr/bin/python3
    script: render.py
    args: ["{script}", "{blend}", "{texture}", "{outdir}", "{samples}", "{outdir.render}", "{outdir.animation}",
           "{no_animation}"]
    params:
      blend: {type: input_file, roots: [${p("templates")}], extensions: [blend]}
      texture: {type: input_file, roots: [${p("composed")}], extensions: [png]}
      design_name: {type: string, pattern: "[A-Za-z0-9_-][A-Za-z0-9._-]*", max_length: 64, default_stem: texture}
      outdir:
        type: output_dir
        roots: [${p("renders")}]
        files:
          render: {name: "{design_name}_render.png", result: renderPath}
          animation: {name: "{design_name}_animation.mp4", result: animationPath}
      samples: {type: int, min: 1, max: 4096, default: "128"}
      no_animation: {type: bool, flag: --no-animation}
  slow:
    description: reports half done, then sleeps
    interpreter: /usr/bin/python3
    script: slow.py
    args: ["{script}", "{seconds}"]
    params:
      seconds: {type: int, min: 1, max: 30, default: "3"}
`,
  );
  return { dir, file: join(dir, "jobs.yaml"), path: p };
}
