import Foundation
import Tensor

/// Training text: fleet's built-in corpus, or any file read as bytes.
public struct Corpus: Sendable {
    public let name: String
    public let bytes: [UInt8]

    public enum LoadError: Error, CustomStringConvertible {
        case unreadable(path: String, reason: String)
        case tooShort(path: String, bytes: Int, needed: Int)

        public var description: String {
            switch self {
            case let .unreadable(path, reason): return "cannot read data file \(path): \(reason); pass a readable UTF-8 or byte text file to --data"
            case let .tooShort(path, bytes, needed):
                return "\(path) holds \(bytes) bytes, but training needs at least \(needed) (a context plus one target in both the train and validation split); use a larger file or a shorter --seq"
            }
        }
    }

    public init(name: String, bytes: [UInt8]) {
        self.name = name
        self.bytes = bytes
    }

    public static func file(_ path: String) throws -> Corpus {
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            return Corpus(name: path, bytes: [UInt8](data))
        } catch {
            throw LoadError.unreadable(path: path, reason: (error as NSError).localizedDescription)
        }
    }

    /// A deterministic synthetic corpus with learnable structure (word order, agreement,
    /// arithmetic facts), about `characters` long, so training works with no files at all.
    public static func builtIn(characters: Int = 1 << 20) -> Corpus {
        let subjects = ["the cat", "a dog", "the old man", "my sister", "the king", "a small bird", "the teacher", "our neighbour",
                        "the farmer", "a young girl", "the sailor", "his brother", "the queen", "a tired horse", "the baker", "my friend"]
        let verbs = ["sees", "likes", "finds", "follows", "remembers", "paints", "carries", "watches",
                     "calls", "forgets", "helps", "answers", "greets", "visits", "builds", "reads"]
        let objects = ["the red door", "a long letter", "the green field", "an empty boat", "the tall tree", "a warm bread",
                       "the quiet river", "a silver coin", "the broken clock", "a wooden chair", "the bright star", "an old map"]
        let places = ["in the garden", "at night", "by the river", "after the rain", "near the market", "before dinner",
                      "on the hill", "in the morning"]
        let numbers = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                       "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen"]
        let rng = CounterRNG(seed: 1234)
        let stream = CounterRNG.stream("corpus")
        var counter: UInt64 = 0
        func pick<T>(_ items: [T]) -> T {
            counter += 1
            return items[Int(rng.bits(stream: stream, index: counter) % UInt64(items.count))]
        }
        var text = ""
        text.reserveCapacity(characters + 200)
        var sentence = 0
        while text.utf8.count < characters {
            var line: String
            if sentence % 5 == 4 {
                let a = Int(rng.bits(stream: stream, index: counter + 1) % 10), b = Int(rng.bits(stream: stream, index: counter + 2) % 9)
                counter += 2
                line = "\(numbers[a]) plus \(numbers[b]) is \(numbers[a + b])."
            } else {
                line = "\(pick(subjects)) \(pick(verbs)) \(pick(objects))"
                if sentence % 3 == 0 { line += " \(pick(places))" }
                line += "."
            }
            text += line.prefix(1).uppercased() + line.dropFirst()
            sentence += 1
            text += sentence % 6 == 0 ? "\n" : " "
        }
        return Corpus(name: "built-in", bytes: Array(text.utf8))
    }
}
