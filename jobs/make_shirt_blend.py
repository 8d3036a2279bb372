"""Build a minimal t-shirt template for the `render` job (render_design.py).

Run with Blender itself (Blender's own Python; nothing else is needed):

    blender --background --factory-startup --python make_shirt_blend.py -- \
        OUT.blend [--size=N] [--broken=WHAT]

The scene has everything render_design.py looks for, and nothing more:
  * a flat T-shirt-shaped mesh object named ``Shirt`` facing the camera, UV
    mapped so that the unit square of texture space spans x in [-1.5, 1.5]
    and z in [-1.5, 1.5] (make_shirt_png.py draws the same outline at the
    same place, so a PNG template composed by the `compose` job lines up
    with the mesh), with a material ``ShirtMaterial`` whose Base Color comes
    from an Image Texture node named ``DesignTexture``;
  * a scene camera looking at the shirt (orthographic, so the shirt fills
    the frame);
  * a sun light and a dark grey world;
  * render settings: N x N pixels (--size, default 64: small so that the
    render is quick; 512 makes a usable preview; even, as H.264 needs),
    Cycles on the CPU, 4 samples (the job sets its own), no denoising,
    Standard view transform (colours as in the texture), 12 fps.

``--broken=no-shirt|no-material|no-texture`` saves a template missing the
corresponding piece (for render_design.py's error tests).
"""

import math
import os
import sys

import bmesh
import bpy

# T-shirt outline in the XZ plane (x right, z up), facing -Y (the camera).
# Units are arbitrary; the shape spans x in [-1.5, 1.5], z in [-1.5, 1.3].
OUTLINE = [
    (-0.9, -1.5), (0.9, -1.5),      # hem
    (0.9, 0.55),                     # right side up to the armpit
    (1.5, 0.25), (1.5, 0.85),        # right sleeve
    (0.55, 1.3),                     # right shoulder
    (0.25, 1.15), (-0.25, 1.15),     # neckline
    (-0.55, 1.3),                    # left shoulder
    (-1.5, 0.85), (-1.5, 0.25),      # left sleeve
    (-0.9, 0.55),                    # left side
]


def parse_args(argv):
    args = argv[argv.index("--") + 1:] if "--" in argv else []
    out, broken, size = None, None, 64
    for a in args:
        if a.startswith("--broken="):
            broken = a.split("=", 1)[1]
            if broken not in ("no-shirt", "no-material", "no-texture"):
                raise SystemExit(f"make_shirt_blend: unknown --broken value {broken!r}")
        elif a.startswith("--size="):
            v = a.split("=", 1)[1]
            if not (v.isascii() and v.isdigit() and 16 <= int(v) <= 8192 and int(v) % 2 == 0):
                raise SystemExit(f"make_shirt_blend: --size must be an even number of pixels "
                                 f"between 16 and 8192, got {v!r}")
            size = int(v)
        elif a.startswith("-"):
            raise SystemExit(f"make_shirt_blend: unknown option {a!r}")
        elif out is None:
            out = a
        else:
            raise SystemExit("make_shirt_blend: too many arguments")
    if out is None:
        raise SystemExit("usage: blender --background --factory-startup --python make_shirt_blend.py -- "
                         "OUT.blend [--size=N] [--broken=no-shirt|no-material|no-texture]")
    return out, broken, size


def clear_scene():
    for coll in (bpy.data.objects, bpy.data.meshes, bpy.data.materials,
                 bpy.data.cameras, bpy.data.lights, bpy.data.images):
        for item in list(coll):
            coll.remove(item)


def make_shirt_mesh():
    mesh = bpy.data.meshes.new("ShirtMesh")
    bm = bmesh.new()
    verts = [bm.verts.new((x, 0.0, z)) for x, z in OUTLINE]
    # Counter-clockwise seen from -Y so the face normal points at the camera.
    face = bm.faces.new(list(reversed(verts)))
    bm.normal_update()
    if face.normal.y > 0:
        face.normal_flip()
    uv = bm.loops.layers.uv.new("UVMap")
    for loop in face.loops:
        x, _, z = loop.vert.co
        loop[uv].uv = ((x + 1.5) / 3.0, (z + 1.5) / 3.0)
    bmesh.ops.triangulate(bm, faces=bm.faces[:])
    bm.to_mesh(mesh)
    bm.free()
    return mesh


def make_material(with_texture):
    mat = bpy.data.materials.new("ShirtMaterial")
    mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    bsdf = nodes.get("Principled BSDF")
    bsdf.inputs["Roughness"].default_value = 0.8
    bsdf.inputs["Specular"].default_value = 0.1
    if with_texture:
        img = bpy.data.images.new("DesignPlaceholder", 8, 8)
        img.generated_color = (0.8, 0.8, 0.8, 1.0)
        tex = nodes.new("ShaderNodeTexImage")
        tex.name = tex.label = "DesignTexture"
        tex.image = img
        tex.location = (-350, 300)
        links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    return mat


def main():
    out, broken, size = parse_args(sys.argv)
    clear_scene()
    scene = bpy.context.scene
    coll = scene.collection

    if broken != "no-shirt":
        shirt = bpy.data.objects.new("Shirt", make_shirt_mesh())
        coll.objects.link(shirt)
        if broken != "no-material":
            shirt.data.materials.append(make_material(broken != "no-texture"))
    else:
        # Something else to look at, so only the name is missing.
        other = bpy.data.objects.new("Mannequin", make_shirt_mesh())
        coll.objects.link(other)
        other.data.materials.append(make_material(True))

    cam_data = bpy.data.cameras.new("Camera")
    cam_data.type = "ORTHO"
    cam_data.ortho_scale = 3.6
    cam = bpy.data.objects.new("Camera", cam_data)
    cam.location = (0.0, -6.0, -0.1)
    cam.rotation_euler = (math.radians(90.0), 0.0, 0.0)
    coll.objects.link(cam)
    scene.camera = cam

    light_data = bpy.data.lights.new("Sun", type="SUN")
    light_data.energy = 3.0
    light = bpy.data.objects.new("Sun", light_data)
    # Pointing roughly along +Y (towards the shirt's front), a little from above.
    light.rotation_euler = (math.radians(80.0), 0.0, math.radians(15.0))
    coll.objects.link(light)

    world = scene.world or bpy.data.worlds.new("World")
    scene.world = world
    world.use_nodes = True
    bg = world.node_tree.nodes.get("Background")
    bg.inputs["Color"].default_value = (0.05, 0.05, 0.05, 1.0)
    bg.inputs["Strength"].default_value = 1.0

    r = scene.render
    r.engine = "CYCLES"
    r.resolution_x = r.resolution_y = size
    r.resolution_percentage = 100
    r.fps = 12
    scene.frame_start, scene.frame_end, scene.frame_current = 1, 12, 1
    scene.cycles.device = "CPU"
    scene.cycles.samples = 4
    scene.cycles.use_adaptive_sampling = False
    scene.cycles.use_denoising = False
    scene.cycles.max_bounces = 2
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"

    bpy.ops.wm.save_as_mainfile(filepath=os.path.abspath(out), compress=False)
    print(f"make_shirt_blend: wrote {out}" + (f" ({broken})" if broken else ""))


try:
    main()
except SystemExit:
    raise
except Exception as e:  # Blender would otherwise exit 0 after a traceback.
    import traceback
    traceback.print_exc()
    sys.exit(f"make_shirt_blend: {e}")
