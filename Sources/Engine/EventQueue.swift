import HeapModule

/// The simulator's clock and pending events: a binary heap ordered by (time, sequence
/// number), so events at the same instant run in the order they were scheduled and every
/// run of a scenario is identical. Events carry a value of the owner's own type (an enum of
/// what can happen, to whom), not closures, so scheduling allocates nothing.
public struct EventQueue<Happening> {
    public struct Event: Comparable {
        public let time: SimTime
        public let sequence: Int
        public let happening: Happening

        public static func == (a: Event, b: Event) -> Bool { a.time == b.time && a.sequence == b.sequence }

        public static func < (a: Event, b: Event) -> Bool {
            a.time != b.time ? a.time < b.time : a.sequence < b.sequence
        }
    }

    private var heap = Heap<Event>()
    private var sequence = 0
    public private(set) var now = SimTime.zero
    public private(set) var processed = 0

    public init() {}

    public var isEmpty: Bool { heap.isEmpty }

    public mutating func schedule(_ happening: Happening, at time: SimTime) {
        precondition(time >= now, "an event cannot be scheduled in the past (\(time) < \(now))")
        heap.insert(Event(time: time, sequence: sequence, happening: happening))
        sequence += 1
    }

    /// Removes the earliest event and advances the clock to it.
    public mutating func next() -> Event? {
        guard let event = heap.popMin() else { return nil }
        now = event.time
        processed += 1
        return event
    }
}
