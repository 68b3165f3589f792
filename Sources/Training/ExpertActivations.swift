import Tensor
import Workload

/// What an MoE block keeps from its forward pass for the backward one: the router's logits
/// and routing, and the experts' inputs, hidden activations and outputs, expert by expert
/// (room for every row's `topK` assignments; dropped ones leave the tail unused). The
/// backward scratch (`Scratch`) is shared by the blocks of a micro-batch.
final class ExpertActivations {
    let logits: FloatBuffer
    var routing: ExpertRouting?
    let input: FloatBuffer, fc: FloatBuffer, gelu: FloatBuffer, geluTanh: FloatBuffer, output: FloatBuffer

    init(rows: Int, moe: MixtureOfExperts, channels c: Int) {
        let slots = rows * moe.topK, h = moe.expertHidden
        logits = FloatBuffer(count: rows * moe.experts)
        input = FloatBuffer(count: slots * c)
        fc = FloatBuffer(count: slots * h)
        gelu = FloatBuffer(count: slots * h)
        geluTanh = FloatBuffer(count: slots * h)
        output = FloatBuffer(count: slots * c)
    }

    var buffers: [FloatBuffer] { [logits, input, fc, gelu, geluTanh, output] }

    /// Backward scratch: the gradients of the experts' outputs, hidden units and inputs, and of the router's logits.
    final class Scratch {
        let dOutput: FloatBuffer, dHidden: FloatBuffer, dInput: FloatBuffer, dLogits: FloatBuffer

        init(rows: Int, moe: MixtureOfExperts, channels c: Int) {
            let slots = rows * moe.topK
            dOutput = FloatBuffer(count: slots * c)
            dHidden = FloatBuffer(count: slots * moe.expertHidden)
            dInput = FloatBuffer(count: slots * c)
            dLogits = FloatBuffer(count: rows * moe.experts)
        }

        var buffers: [FloatBuffer] { [dOutput, dHidden, dInput, dLogits] }
    }
}
