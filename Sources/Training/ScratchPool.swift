import Tensor

/// Growable scratch buffers kept between steps, so deterministic reductions do not allocate
/// (and page-fault) per call. Slots are independent; contents are undefined on return.
final class ScratchPool {
    private var buffers: [FloatBuffer] = []

    func floats(_ slot: Int, _ count: Int) -> UnsafeMutablePointer<Float> {
        while buffers.count <= slot { buffers.append(FloatBuffer(count: 0)) }
        if buffers[slot].count < count { buffers[slot] = FloatBuffer(count: count) }
        return buffers[slot].pointer
    }
}
