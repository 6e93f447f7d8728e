/// Several mutations as one byte string, in the journal's encoding of each (type, u32 length,
/// payload): the form a cluster's change log stores a change in.
package enum MutationBatch {
    /// The bytes of `mutations`, in order.
    package static func encode(_ mutations: [KeyMutation]) -> [UInt8] {
        var bytes: [UInt8] = []
        for mutation in mutations {
            bytes.append(MutationCodec.type(of: mutation))
            let lengthAt = bytes.count
            bytes.appendLittleEndian(UInt32(0))
            MutationCodec.encodePayload(mutation, into: &bytes)
            let length = UInt32(bytes.count - lengthAt - 4)
            withUnsafeBytes(of: length.littleEndian) { lengthBytes in
                for index in 0..<4 { bytes[lengthAt + index] = lengthBytes[index] }
            }
        }
        return bytes
    }

    /// The mutations `bytes` holds; nil when any does not decode or the bytes end mid-way.
    package static func decode(_ bytes: [UInt8]) -> [KeyMutation]? {
        var reader = ByteReader(bytes[...])
        var mutations: [KeyMutation] = []
        while !reader.isAtEnd {
            guard let type = reader.uint8(), let length = reader.uint32(), let payload = reader.bytes(Int(length)),
                let mutation = MutationCodec.decode(type: type, payload: payload)
            else { return nil }
            mutations.append(mutation)
        }
        return mutations
    }
}
