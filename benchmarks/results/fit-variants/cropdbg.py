"""PSNR every 15 steps of the crop fit (crop.py's run_fit) on train/chaplin, 16 frames."""
import os, sys
import torch
os.environ.setdefault("CROP_CELLS", "6")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crop import run_fit  # noqa: E402
from metanerv.model import frame_times  # noqa: E402
from metanerv.init_file import load_init
from metanerv.model import build_model, grid_size_for, init_state_for, pad_to_stride
from metanerv.losses import psnr
from nervcore.video_io import read_video
from codec.finetune import FitSettings, start_fit, frames_to_tensor
v = read_video("../shared/data/train/chaplin.mp4", frames=slice(0,16))
fr = pad_to_stride(frames_to_tensor(v.frames), 16)
ini = load_init("metanerv/inits/default.safetensors")
gh = grid_size_for(360,640,ini.config)
m = build_model(ini.config, gh, ini.state)
base = init_state_for(ini.state, gh)
s = FitSettings(steps=150, batch=int(os.environ.get("B","2")), lam=1.4, lr=float(os.environ.get("LR","2e-2")))
st = start_fit(m, base, s)
pix = 16*360*640
for k in range(0,150,15):
    run_fit(m, fr, base, st, s, k+15, pix)
    with torch.no_grad():
        q,_ = st.rate.quantize_flat(st.resid)
        w = st.rate.unflatten(st.rate.flatten(base)+q)
        from torch.func import functional_call
        p = functional_call(m, w, (frame_times(torch.arange(16),16),))
        print(k+15, float(psnr(p[..., :360, :], fr[..., :360, :])), flush=True)
