"""Build the tiny deployable artifacts the device tests run: `python make_artifacts.py OUT_DIR [ARCH]`.

A random 32x48 SegNet or SegNet-Basic (alpha 0.125, 4 classes) as fp32 TFLite, full-int8 TFLite
(int8 in/out) and ONNX, each with its segnet-edge metadata embedded; SegNet-Basic's graphs start after
its input LRN, which their metadata hands to the preprocessing, as `convert` builds them. It runs in
its own process so the test process, like the board, never imports TensorFlow.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

INPUT_SIZE = (32, 48)
CLASSES = ("sky", "building", "road", "car")


def main(out: Path, arch: str = "segnet") -> None:
    from segnet_edge._tf import keras, tf
    from segnet_edge.device.artifact_metadata import embed_tflite_metadata, sealed_onnx_bytes
    from segnet_edge.device.metadata import ModelMetadata, Normalization, TensorQuantization, default_palette
    from segnet_edge.device.preprocess import preprocess
    from segnet_edge.models import ModelConfig, build_model, drop_input_lrn

    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    model, lrn = drop_input_lrn(build_model(ModelConfig(arch=arch, input_size=INPUT_SIZE, num_classes=len(CLASSES),
                                                        alpha=0.125)))
    base = ModelMetadata(class_names=CLASSES, palette=default_palette(len(CLASSES)), input_size=INPUT_SIZE,
                         normalization=Normalization(lrn=lrn), alpha=0.125, format="tflite", arch=arch)

    fp32 = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    (out / "model_fp32.tflite").write_bytes(embed_tflite_metadata(fp32, base))
    (out / "no_metadata.tflite").write_bytes(fp32)

    rng = np.random.default_rng(0)

    def representative():
        for _ in range(8):
            frame = rng.integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
            yield [preprocess(frame, INPUT_SIZE, base.normalization)[None]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    int8 = converter.convert()
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=int8)
    (in_scale, in_zp), (out_scale, out_zp) = (interpreter.get_input_details()[0]["quantization"],
                                              interpreter.get_output_details()[0]["quantization"])
    int8_meta = replace(base, input_quantization=TensorQuantization("int8", float(in_scale), int(in_zp)),
                        output_quantization=TensorQuantization("int8", float(out_scale), int(out_zp)))
    (out / "model_int8.tflite").write_bytes(embed_tflite_metadata(int8, int8_meta))

    import tf2onnx

    proto, _ = tf2onnx.convert.from_keras(
        model, input_signature=[tf.TensorSpec((1, *INPUT_SIZE, 3), tf.float32, name="image")], opset=17)
    (out / "model.onnx").write_bytes(sealed_onnx_bytes(proto, replace(base, format="onnx")))


if __name__ == "__main__":
    main(Path(sys.argv[1]), *sys.argv[2:])
