import Tensor
import Workload

/// What an MoE block keeps from its forward pass for the backward one: the router's logits
/// and routing; the dispatched rows (`input`, every row's `topK` assignments expert by expert;
/// dropped ones leave the tail unused) and the combined experts' outputs (`output`) in that
/// order; and what this rank's experts computed — their inputs, hidden activations and
/// outputs, expert by expert (`served…`). Without expert parallelism the experts serve exactly
/// the dispatched rows, so the served buffers are `input` and `output` themselves; with it they
/// hold every member's rows for this rank's experts (room for all of the group's assignments)
/// and `served` says whose they are. The backward scratch (`Scratch`) is shared by the blocks of a micro-batch.
final class ExpertActivations {
    let logits: FloatBuffer
    var routing: ExpertRouting?
    let input: FloatBuffer, output: FloatBuffer
    let servedInput: FloatBuffer, fc: FloatBuffer, gelu: FloatBuffer, geluTanh: FloatBuffer, servedOutput: FloatBuffer
    /// Under expert parallelism: the rows this rank's experts served in the last forward pass.
    var served: ServedRows?

    /// `members`: the expert-parallel group's size (each may send all its rows here).
    init(rows: Int, moe: MixtureOfExperts, channels c: Int, members: Int = 1) {
        let slots = rows * moe.topK, h = moe.expertHidden, servedSlots = slots * members
        logits = FloatBuffer(count: rows * moe.experts)
        input = FloatBuffer(count: slots * c)
        output = FloatBuffer(count: slots * c)
        servedInput = members > 1 ? FloatBuffer(count: servedSlots * c) : input
        fc = FloatBuffer(count: servedSlots * h)
        gelu = FloatBuffer(count: servedSlots * h)
        geluTanh = FloatBuffer(count: servedSlots * h)
        servedOutput = members > 1 ? FloatBuffer(count: servedSlots * c) : output
    }

    var buffers: [FloatBuffer] {
        [logits, input, fc, gelu, geluTanh, output] + (servedInput === input ? [] : [servedInput, servedOutput])
    }

    /// Backward scratch: the gradients of the experts' outputs, hidden units and inputs (as
    /// dispatched, and as served), and of the router's logits.
    final class Scratch {
        let dOutput: FloatBuffer, dInput: FloatBuffer, dLogits: FloatBuffer
        let dHidden: FloatBuffer, servedDOutput: FloatBuffer, servedDInput: FloatBuffer

        init(rows: Int, moe: MixtureOfExperts, channels c: Int, members: Int = 1) {
            let slots = rows * moe.topK, servedSlots = slots * members
            dOutput = FloatBuffer(count: slots * c)
            dInput = FloatBuffer(count: slots * c)
            dLogits = FloatBuffer(count: rows * moe.experts)
            dHidden = FloatBuffer(count: servedSlots * moe.expertHidden)
            servedDOutput = members > 1 ? FloatBuffer(count: servedSlots * c) : dOutput
            servedDInput = members > 1 ? FloatBuffer(count: servedSlots * c) : dInput
        }

        var buffers: [FloatBuffer] {
            [dOutput, dHidden, dInput, dLogits] + (servedDOutput === dOutput ? [] : [servedDOutput, servedDInput])
        }
    }
}
