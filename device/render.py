"""Turn a frame and its label map into the annotated picture: colour overlay, legend, FPS text.

The palette becomes a 256-entry colour map once, so colouring a frame is one
`cv2.applyColorMap` call; the legend is drawn once and pasted per frame.
"""

from __future__ import annotations

import numpy as np

from segnet_edge.device.metadata import ModelMetadata


def palette_lut(palette: tuple[tuple[int, int, int], ...]) -> np.ndarray:
    """RGB palette -> (256, 1, 3) BGR lookup table; labels without a colour render black."""
    lut = np.zeros((256, 1, 3), np.uint8)
    for i, (r, g, b) in enumerate(palette[:256]):
        lut[i, 0] = (b, g, r)
    return lut


def colorize(labels: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """uint8 label map (H, W) -> BGR colour image (H, W, 3)."""
    import cv2

    return cv2.applyColorMap(np.ascontiguousarray(labels, dtype=np.uint8), lut)


def draw_legend(class_names: tuple[str, ...], lut: np.ndarray, scale: float = 0.4) -> np.ndarray:
    """A small BGR panel with one colour swatch and name per class."""
    import cv2

    font = cv2.FONT_HERSHEY_SIMPLEX
    row = max(12, int(28 * scale))
    text_w = max((cv2.getTextSize(n, font, scale, 1)[0][0] for n in class_names), default=0)
    panel = np.full((row * len(class_names) + 6, row + text_w + 12, 3), 32, np.uint8)
    for i, name in enumerate(class_names):
        y = 3 + i * row
        colour = tuple(int(c) for c in lut[i, 0])
        cv2.rectangle(panel, (4, y + 2), (row, y + row - 2), colour, -1)
        cv2.putText(panel, name, (row + 6, y + row - 4), font, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return panel


class Renderer:
    """Overlay, legend and FPS text for one model's class list and palette."""

    def __init__(self, metadata: ModelMetadata, alpha: float = 0.5, legend: bool = True, fps_text: bool = True):
        if not 0.0 <= alpha <= 1.0:
            from segnet_edge.device.errors import UsageError

            raise UsageError(f"--alpha must be between 0 and 1, got {alpha}")
        self.alpha = alpha
        self.lut = palette_lut(metadata.palette)
        self.legend = draw_legend(metadata.class_names, self.lut) if legend else None
        self.fps_text = fps_text
        self._colour: np.ndarray | None = None  # reused from frame to frame (same size: no allocation)
        self._out: np.ndarray | None = None

    def render(self, frame: np.ndarray, labels: np.ndarray, fps: float | None = None) -> np.ndarray:
        """The annotated frame; `frame` is not modified. The result is the renderer's own buffer, reused by the
        next call (the sinks consume it before then): a stream allocates no colour or overlay image per frame."""
        import cv2

        if self._out is None or self._out.shape != frame.shape or self._out.dtype != frame.dtype:
            self._colour = np.empty(frame.shape, np.uint8)
            self._out = np.empty_like(frame)
        colour = cv2.applyColorMap(np.ascontiguousarray(labels, dtype=np.uint8), self.lut, dst=self._colour)
        out = cv2.addWeighted(frame, 1.0 - self.alpha, colour, self.alpha, 0.0, dst=self._out)
        if self.legend is not None:
            h = min(self.legend.shape[0], out.shape[0])
            w = min(self.legend.shape[1], out.shape[1])
            out[:h, out.shape[1] - w :] = self.legend[:h, :w]
        if self.fps_text and fps is not None:
            text = f"{fps:.1f} FPS"
            cv2.putText(out, text, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(out, text, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 1, cv2.LINE_AA)
        return out
