import APIKeyEngine

extension Engine {
    /// Every record, by ascending order ID, page by page through the public API; for comparing
    /// whole states.
    public func allRecords() -> [KeyRecord] {
        var records: [KeyRecord] = []
        var page = 1
        while true {
            let batch = try! list(page: page, perPage: configuration.maximumPageSize)
            records += batch.list
            if records.count >= batch.total || batch.list.isEmpty { return records }
            page += 1
        }
    }
}
