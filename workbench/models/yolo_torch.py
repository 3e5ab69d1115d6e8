"""A YOLOv8-style detector in PyTorch, and its training loop (written here; `ultralytics`
is AGPL-3.0 and not a dependency).

Architecture (YOLOv8 "n" scale by default):

* backbone: strided 3x3 Conv-BN-SiLU stem and downsamplers, C2f blocks (a CSP block
  whose bottleneck outputs are all concatenated), SPPF at the top (P5);
* neck: PAN-FPN -- top-down (upsample + concat + C2f) then bottom-up (strided conv +
  concat + C2f), giving P3/P4/P5 at strides 8/16/32;
* head: decoupled and anchor-free -- per level a box branch predicting a
  distribution over 16 bins for each of the four distances left/top/right/bottom
  (DFL: the distance is the distribution's mean) and a class branch; no objectness.

`forward` returns the raw YOLOv8 head layout ``[B, 4 + C, N]``: cx, cy, w, h then
sigmoid class scores, for every anchor point of the three levels. Boxes are
normalized by the input size (0..1) rather than in pixels, so that one tensor holds
only values of similar range -- an INT8-quantized output (one scale per tensor)
keeps both boxes and scores usable; the decoder multiplies by the input size.
Anchor points are precomputed for the model's fixed input size, so exported graphs
hold them as constants.

Training (`train`): task-aligned assignment (YOLOv8's TAL: top-10 anchors inside each
box by score^0.5 x CIoU^6, normalized alignment as the class target), CIoU + DFL box
losses and BCE class loss with YOLOv8's gains, AdamW with warm-up and cosine decay,
and an EMA of the weights. Inference models are built with BatchNorm folded into
the convolutions (`fused_state`), as deployment does.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from workbench.models.yolo_config import STRIDES, YoloConfig, anchor_points
from workbench.progress import progress

log = logging.getLogger(__name__)


class Conv(nn.Module):
    """Conv2d (k, s, padding k//2) + BatchNorm + SiLU; with fused=True, Conv2d with bias + SiLU."""

    def __init__(self, c_in: int, c_out: int, k: int = 1, s: int = 1, fused: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, s, k // 2, bias=fused)
        self.bn = nn.Identity() if fused else nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.03)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, c: int, shortcut: bool, fused: bool):
        super().__init__()
        self.cv1 = Conv(c, c, 3, fused=fused)
        self.cv2 = Conv(c, c, 3, fused=fused)
        self.add = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    """CSP bottleneck with 2 convolutions: split, n bottlenecks, concatenate all, fuse."""

    def __init__(self, c_in: int, c_out: int, n: int, shortcut: bool, fused: bool):
        super().__init__()
        self.c = c_out // 2
        self.cv1 = Conv(c_in, 2 * self.c, 1, fused=fused)
        self.cv2 = Conv((2 + n) * self.c, c_out, 1, fused=fused)
        self.m = nn.ModuleList(Bottleneck(self.c, shortcut, fused) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv1(x)
        ys = [y[:, : self.c], y[:, self.c :]]
        for block in self.m:
            ys.append(block(ys[-1]))
        return self.cv2(torch.cat(ys, 1))


class SPPF(nn.Module):
    """Spatial pyramid pooling (fast): three chained 5x5 max-pools, concatenated."""

    def __init__(self, c_in: int, c_out: int, fused: bool):
        super().__init__()
        hidden = c_in // 2
        self.cv1 = Conv(c_in, hidden, 1, fused=fused)
        self.cv2 = Conv(hidden * 4, c_out, 1, fused=fused)
        self.pool = nn.MaxPool2d(5, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(self.pool(y[-1]))
        return self.cv2(torch.cat(y, 1))


class Head(nn.Module):
    """Decoupled anchor-free head: per level, a box branch (4 x reg_max DFL logits) and a
    class branch (num_classes logits)."""

    def __init__(self, cfg: YoloConfig, channels: tuple[int, ...], fused: bool):
        super().__init__()
        c_box, c_cls = cfg.head_channels
        self.box = nn.ModuleList(
            nn.Sequential(
                Conv(c, c_box, 3, fused=fused),
                Conv(c_box, c_box, 3, fused=fused),
                nn.Conv2d(c_box, 4 * cfg.reg_max, 1),
            )
            for c in channels
        )
        self.cls = nn.ModuleList(
            nn.Sequential(
                Conv(c, c_cls, 3, fused=fused),
                Conv(c_cls, c_cls, 3, fused=fused),
                nn.Conv2d(c_cls, cfg.num_classes, 1),
            )
            for c in channels
        )

    def init_biases(self, num_classes: int) -> None:
        """YOLOv8's priors: box logits 1.0; class logits for ~5 objects per 640x640 image."""
        for box, cls, stride in zip(self.box, self.cls, STRIDES, strict=True):
            nn.init.constant_(box[-1].bias, 1.0)
            nn.init.constant_(cls[-1].bias, math.log(5 / num_classes / (640 / stride) ** 2))

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (box logits [B, 4 * reg_max, N], class logits [B, C, N])."""
        boxes = [_flat(b(f)) for b, f in zip(self.box, feats, strict=True)]
        scores = [_flat(c(f)) for c, f in zip(self.cls, feats, strict=True)]
        return torch.cat(boxes, 2), torch.cat(scores, 2)


def _flat(x: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] -> [B, C, H * W] with the batch left as -1, so a graph exported at a
    fixed batch size still runs when a runtime resizes its batch (TFLite)."""
    _, c, h, w = x.shape
    return x.reshape(-1, c, h * w)


class YoloV8(nn.Module):
    """YOLOv8-style detector; `forward(images [B, 3, S, S] in 0..1)` -> [B, 4 + C, N]."""

    def __init__(self, cfg: YoloConfig | None = None, fused: bool = False):
        super().__init__()
        self.cfg = cfg = cfg or YoloConfig()
        w, d = cfg.widths, cfg.depths
        self.stem = Conv(3, w[0], 3, 2, fused)
        self.down2 = Conv(w[0], w[1], 3, 2, fused)
        self.c2f2 = C2f(w[1], w[1], d[0], True, fused)
        self.down3 = Conv(w[1], w[2], 3, 2, fused)
        self.c2f3 = C2f(w[2], w[2], d[1], True, fused)
        self.down4 = Conv(w[2], w[3], 3, 2, fused)
        self.c2f4 = C2f(w[3], w[3], d[2], True, fused)
        self.down5 = Conv(w[3], w[4], 3, 2, fused)
        self.c2f5 = C2f(w[4], w[4], d[3], True, fused)
        self.sppf = SPPF(w[4], w[4], fused)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.top4 = C2f(w[4] + w[3], w[3], 1, False, fused)
        self.top3 = C2f(w[3] + w[2], w[2], 1, False, fused)
        self.bottom_down3 = Conv(w[2], w[2], 3, 2, fused)
        self.bottom4 = C2f(w[2] + w[3], w[3], 1, False, fused)
        self.bottom_down4 = Conv(w[3], w[3], 3, 2, fused)
        self.bottom5 = C2f(w[3] + w[4], w[4], 1, False, fused)
        self.head = Head(cfg, (w[2], w[3], w[4]), fused)
        points, strides = anchor_points(cfg.image_size)
        self.register_buffer("anchors", torch.from_numpy(points.T.copy()), persistent=False)
        self.register_buffer("strides", torch.from_numpy(strides[None]), persistent=False)
        self.register_buffer(
            "proj", torch.arange(cfg.reg_max, dtype=torch.float32), persistent=False
        )
        if not fused:
            self.head.init_biases(cfg.num_classes)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.c2f2(self.down2(self.stem(x)))
        p3 = self.c2f3(self.down3(x))
        p4 = self.c2f4(self.down4(p3))
        p5 = self.sppf(self.c2f5(self.down5(p4)))
        t4 = self.top4(torch.cat([self.up(p5), p4], 1))
        n3 = self.top3(torch.cat([self.up(t4), p3], 1))
        n4 = self.bottom4(torch.cat([self.bottom_down3(n3), t4], 1))
        n5 = self.bottom5(torch.cat([self.bottom_down4(n4), p5], 1))
        return [n3, n4, n5]

    def raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(box DFL logits [B, 4 * reg_max, N], class logits [B, C, N]) -- for training."""
        return self.head(self.features(x))

    def distances(self, box_logits: torch.Tensor) -> torch.Tensor:
        """DFL: [B, 4 * reg_max, N] logits -> [B, 4, N] expected l, t, r, b (in strides)."""
        n = box_logits.shape[-1]
        prob = box_logits.reshape(-1, 4, self.cfg.reg_max, n).softmax(2)
        return (prob * self.proj.view(1, 1, -1, 1)).sum(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        box_logits, cls_logits = self.raw(x)
        dist = self.distances(box_logits) * self.strides  # pixels
        lt, rb = dist[:, :2], dist[:, 2:]
        centre = self.anchors + (rb - lt) / 2
        size = lt + rb
        boxes = torch.cat([centre, size], 1) / float(self.cfg.image_size)
        return torch.cat([boxes, cls_logits.sigmoid()], 1)


# ---------------------------------------------------------------------------- weights


def fused_state(model: YoloV8) -> dict[str, np.ndarray]:
    """The model's weights with every BatchNorm folded into its convolution, as NumPy
    arrays keyed like a `YoloV8(fused=True)` state dict (conv weights OIHW)."""
    out: dict[str, np.ndarray] = {}
    for name, module in model.named_modules():
        if isinstance(module, Conv):
            w = module.conv.weight.detach().double()
            if isinstance(module.bn, nn.BatchNorm2d):
                bn = module.bn
                factor = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
                bias = bn.bias.detach().double() - bn.running_mean.double() * factor
                w = w * factor[:, None, None, None]
            else:
                bias = module.conv.bias.detach().double()
            out[f"{name}.conv.weight"] = w.float().numpy()
            out[f"{name}.conv.bias"] = bias.float().numpy()
        elif isinstance(module, nn.Conv2d) and not name.endswith(".conv"):
            out[f"{name}.weight"] = module.weight.detach().float().numpy().copy()
            out[f"{name}.bias"] = module.bias.detach().float().numpy().copy()
    return out


def build_fused(cfg: YoloConfig, state: dict[str, np.ndarray]) -> YoloV8:
    """An inference model (BatchNorm folded) at cfg.image_size with the given weights."""
    model = YoloV8(cfg, fused=True)
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
    return model.eval()


def complexity(model: nn.Module, image_size: int) -> dict[str, float]:
    """Parameter count and GFLOPs (multiply-add = 2 FLOPs) of one image at image_size."""
    params = sum(p.numel() for p in model.parameters())
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 3, image_size, image_size))
    return {"params": float(params), "gflops": counter.get_total_flops() / 1e9}


# ---------------------------------------------------------------------------- training


def box_ciou(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Complete IoU of xyxy boxes, broadcasting over leading dimensions."""
    w1, h1 = a[..., 2] - a[..., 0], (a[..., 3] - a[..., 1]).clamp(min=eps)
    w2, h2 = b[..., 2] - b[..., 0], (b[..., 3] - b[..., 1]).clamp(min=eps)
    iw = (torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0])).clamp(0)
    ih = (torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1])).clamp(0)
    inter = iw * ih
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    cw = torch.maximum(a[..., 2], b[..., 2]) - torch.minimum(a[..., 0], b[..., 0])
    ch = torch.maximum(a[..., 3], b[..., 3]) - torch.minimum(a[..., 1], b[..., 1])
    c2 = cw**2 + ch**2 + eps
    rho2 = (
        (b[..., 0] + b[..., 2] - a[..., 0] - a[..., 2]) ** 2
        + (b[..., 1] + b[..., 3] - a[..., 1] - a[..., 3]) ** 2
    ) / 4
    v = (4 / math.pi**2) * (torch.atan(w2 / h2) - torch.atan(w1 / h1)) ** 2
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)


@torch.no_grad()
def task_aligned_assign(
    scores: torch.Tensor,
    boxes: torch.Tensor,
    anchors: torch.Tensor,
    gt_labels: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_mask: torch.Tensor,
    topk: int = 10,
    alpha: float = 0.5,
    beta: float = 6.0,
    eps: float = 1e-9,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """YOLOv8's task-aligned assigner.

    scores [B, N, C] (sigmoid), boxes [B, N, 4] xyxy px (predicted), anchors [N, 2] px,
    gt_labels [B, M], gt_boxes [B, M, 4], gt_mask [B, M] (real vs padding).
    Returns target boxes [B, N, 4], target scores [B, N, C], foreground mask [B, N].
    """
    b, n, c = scores.shape
    m = gt_boxes.shape[1]
    if m == 0:
        return torch.zeros_like(boxes), torch.zeros_like(scores), torch.zeros(b, n, dtype=bool)
    lt = anchors[None, None] - gt_boxes[:, :, None, :2]
    rb = gt_boxes[:, :, None, 2:] - anchors[None, None]
    mask = (torch.cat([lt, rb], -1).amin(-1) > eps) & gt_mask[..., None]  # [B, M, N]
    cls_scores = scores.permute(0, 2, 1).gather(1, gt_labels[..., None].expand(-1, -1, n))
    ious = box_ciou(gt_boxes[:, :, None, :], boxes[:, None, :, :]).clamp(0) * mask
    align = cls_scores.pow(alpha) * ious.pow(beta) * mask
    top = align.topk(min(topk, n), dim=-1).indices
    pos = torch.zeros_like(mask).scatter_(-1, top, True) & mask
    multi = pos.sum(1) > 1  # anchors claimed by several boxes keep the best-overlapping one
    if multi.any():
        best = F.one_hot(ious.argmax(1), m).permute(0, 2, 1).bool()
        pos = torch.where(multi[:, None, :], best, pos)
    fg = pos.any(1)
    idx = pos.float().argmax(1)  # [B, N]
    target_boxes = gt_boxes.gather(1, idx[..., None].expand(-1, -1, 4))
    target_labels = gt_labels.gather(1, idx)
    target_scores = F.one_hot(target_labels, c).float() * fg[..., None]
    align = align * pos
    norm = (
        align * (ious * pos).amax(-1, keepdim=True) / (align.amax(-1, keepdim=True) + eps)
    ).amax(1)
    return target_boxes, target_scores * norm[..., None], fg


def detection_loss(
    model: YoloV8,
    images: torch.Tensor,
    gt_labels: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_mask: torch.Tensor,
) -> tuple[torch.Tensor, dict[str, float]]:
    """YOLOv8's loss: 7.5 x CIoU + 1.5 x DFL + 0.5 x BCE, normalized by the target scores."""
    box_logits, cls_logits = model.raw(images)
    b, _, n = box_logits.shape
    reg = model.cfg.reg_max
    anchors, strides = model.anchors.T, model.strides[0]  # [N, 2] px, [N]
    dist = model.distances(box_logits).permute(0, 2, 1) * strides[None, :, None]  # [B, N, 4]
    pred_boxes = torch.cat([anchors - dist[..., :2], anchors + dist[..., 2:]], -1)
    pred_scores = cls_logits.permute(0, 2, 1)  # [B, N, C]
    target_boxes, target_scores, fg = task_aligned_assign(
        pred_scores.detach().sigmoid(), pred_boxes.detach(), anchors, gt_labels, gt_boxes, gt_mask
    )
    total = target_scores.sum().clamp(min=1)
    loss_cls = F.binary_cross_entropy_with_logits(pred_scores, target_scores, reduction="sum")
    loss_cls = loss_cls / total
    loss_box = loss_dfl = pred_boxes.sum() * 0
    if fg.any():
        weight = target_scores.sum(-1)[fg]
        iou = box_ciou(pred_boxes[fg], target_boxes[fg])
        loss_box = ((1 - iou) * weight).sum() / total
        anc, stride = anchors[None].expand(b, -1, -1)[fg], strides[None].expand(b, -1)[fg]
        tb = target_boxes[fg]
        target = torch.cat([anc - tb[:, :2], tb[:, 2:] - anc], -1) / stride[:, None]
        target = target.clamp(0, reg - 1 - 0.01)
        left = target.long()
        w_left = (left + 1) - target
        logits = box_logits.view(b, 4, reg, n).permute(0, 3, 1, 2)[fg].reshape(-1, reg)
        ce_left = F.cross_entropy(logits, left.view(-1), reduction="none").view(-1, 4)
        ce_right = F.cross_entropy(logits, (left + 1).view(-1), reduction="none").view(-1, 4)
        dfl = (ce_left * w_left + ce_right * (1 - w_left)).mean(-1)
        loss_dfl = (dfl * weight).sum() / total
    loss = 7.5 * loss_box + 1.5 * loss_dfl + 0.5 * loss_cls
    parts = {"box": loss_box.item(), "dfl": loss_dfl.item(), "cls": loss_cls.item()}
    return loss, parts


def _pad_targets(
    boxes: list[np.ndarray], classes: list[np.ndarray]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    m = max(1, max(len(c) for c in classes))
    gt_boxes = torch.zeros(len(boxes), m, 4)
    gt_labels = torch.zeros(len(boxes), m, dtype=torch.long)
    gt_mask = torch.zeros(len(boxes), m, dtype=torch.bool)
    for i, (bx, cl) in enumerate(zip(boxes, classes, strict=True)):
        gt_boxes[i, : len(cl)] = torch.from_numpy(np.asarray(bx, dtype=np.float32))
        gt_labels[i, : len(cl)] = torch.from_numpy(np.asarray(cl, dtype=np.int64))
        gt_mask[i, : len(cl)] = True
    return gt_labels, gt_boxes, gt_mask


Batch = tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]


def train(
    cfg: YoloConfig,
    batches: Callable[[int], Batch],
    steps: int,
    seed: int = 0,
    lr: float = 2e-3,
    warmup: int = 100,
) -> YoloV8:
    """Train a detector at cfg.image_size; `batches(step)` returns (NCHW float32 images,
    boxes xyxy px per image, classes per image). Returns the EMA model (eval mode). Steps
    are reported through `workbench.progress`, the losses every 50 steps at debug level."""
    torch.manual_seed(seed)
    model = YoloV8(cfg).train()
    ema = YoloV8(cfg).eval()
    ema.load_state_dict(model.state_dict())
    for p in ema.parameters():
        p.requires_grad_(False)
    decay_params = [p for n, p in model.named_parameters() if n.endswith("weight") and p.ndim > 1]
    other_params = [
        p for n, p in model.named_parameters() if not (n.endswith("weight") and p.ndim > 1)
    ]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay_params, "weight_decay": 5e-4},
            {"params": other_params, "weight_decay": 0},
        ],
        lr=lr,
        betas=(0.9, 0.999),
    )
    started = time.perf_counter()
    for step in progress(range(steps), "train detector", unit="step"):
        scale = (
            (step + 1) / warmup
            if step < warmup
            else 0.05
            + 0.95 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))
        )
        for group in optimizer.param_groups:
            group["lr"] = lr * scale
        images, boxes, classes = batches(step)
        gt_labels, gt_boxes, gt_mask = _pad_targets(boxes, classes)
        loss, parts = detection_loss(model, torch.from_numpy(images), gt_labels, gt_boxes, gt_mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
        decay = 0.999 * (1 - math.exp(-(step + 1) / 200))
        with torch.no_grad():
            for e, p in zip(ema.state_dict().values(), model.state_dict().values(), strict=True):
                if e.dtype.is_floating_point:
                    e.mul_(decay).add_(p.detach(), alpha=1 - decay)
                else:
                    e.copy_(p)
        if step % 50 == 0 or step == steps - 1:
            log.debug(
                "detector step %5d/%d loss %.3f %s  %.0f s",
                step,
                steps,
                float(loss),
                " ".join(f"{k} {v:.3f}" for k, v in parts.items()),
                time.perf_counter() - started,
            )
    return ema.eval()
