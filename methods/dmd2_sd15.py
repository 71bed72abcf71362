"""``dmd2-sd15``: DMD2's one-step Stable Diffusion 1.5 generator (tianweiy/DMD2, the FID 8.35 COCO checkpoint).

As the authors' evaluation script (tianweiy/DMD2, main/test_folder_sd.py) runs it: the SD 1.5 UNet architecture
with the DMD2 state dict, one evaluation at t = 999 on z ~ N(0, I), the epsilon prediction turned into x0 with
a cumulative alpha of 0.0047 written into that script (the scheduler's value at t = 999 is 0.00466;
``exact_alpha=true`` uses it instead), SD 1.5's text encoder and VAE, 512 px. The checkpoint is a ``.bin``
state dict, read as tensors only.
"""

from __future__ import annotations

from typing import Any, ClassVar

from bench.options import Option
from methods.components import Components
from methods.loading import (
    BASE_FILES,
    SD_FILES,
    _load,
    build_sd,
    fetch,
    on_base,
    wants_random,
    weights_of,
    with_tiny_decoder,
)
from methods.sd_onestep import SDOneStepGenerator

DMD2 = "tianweiy/DMD2"
SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DMD2_SD15_FILE = ("model/sdv1.5/laion6.25_sd_baseline_8node_guidance1.75_lr5e-7_seed10_dfake10_diffusion1000_gan1e-3"
                  "_resume_fid8.35_checkpoint_model_041000/pytorch_model.bin")
#: The cumulative alpha at t = 999 as the authors' script writes it (get_x0_from_noise).
RELEASE_ALPHA = 0.0047
SETTINGS_SOURCE = "https://github.com/tianweiy/DMD2 main/test_folder_sd.py (t = 999, --pred_eps, alpha 0.0047, 512 px)"


class DMD2SD15Generator(SDOneStepGenerator):
    """DMD2 SD 1.5: one UNet evaluation at t = 999, x0 from epsilon with alpha_T = 0.0047 (the authors' constant)."""

    name = "dmd2-sd15"
    arch = "sd15"
    base_repo = SD15
    alpha_T = RELEASE_ALPHA
    options: ClassVar[dict[str, Option]] = {
        **SDOneStepGenerator.options,
        "unet": Option(None, str, help=f"hub id or directory holding {DMD2_SD15_FILE.rsplit('/', 1)[-1]} "
                                       f"at {DMD2_SD15_FILE.rsplit('/', 1)[0]} (default: {DMD2})"),
        "base": Option(None, str, help=f"SD 1.5 pipeline of the text encoder, VAE and UNet config (default: {SD15})"),
        "exact_alpha": Option(False, bool, help="x0 with the scheduler's alpha_bar at t = 999 instead of 0.0047"),
    }

    def load(self, device: Any, dtype: Any) -> None:
        if self.args["exact_alpha"]:
            self.alpha_T = None
        super().load(device, dtype)

    def build_components(self) -> Components:
        if wants_random(self.args, self.name):
            self.built = build_sd(self.args, self.name, arch=self.arch, default_weights=None, device=self.device)
            return self.built.components
        from diffusers import UNet2DConditionModel

        from methods.recipe import load_state_file

        base = fetch(self.base() or SD15, [SD_FILES["unet"][0], *BASE_FILES], self.args.get("revision"), "base")
        student = fetch(self.args.get("unet") or DMD2, [DMD2_SD15_FILE], None, "unet")
        unet = _load("UNet", base, lambda: UNet2DConditionModel.from_config(
            UNet2DConditionModel.load_config(base.path / "unet")), "base")
        state = _load("DMD2 weights", student, lambda: load_state_file(student.path / DMD2_SD15_FILE), "unet")
        unet.load_state_dict(state, strict=True)
        built = on_base(base, unet, "base")
        built.sources["unet"] = {**student.provenance(), "file": DMD2_SD15_FILE}
        built.weights = weights_of(base, student)
        self.built = with_tiny_decoder(built, self.args, self.device)
        return self.built.components

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "settings_source": SETTINGS_SOURCE, "licence": "cc-by-nc-4.0: non-commercial"}
