import java.net.InetSocketAddress;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

import org.h2.mvstore.MVMap;
import org.h2.mvstore.MVStore;

import de.bwaldvogel.mongo.MongoCollection;
import de.bwaldvogel.mongo.MongoDatabase;
import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.ArrayFilters;
import de.bwaldvogel.mongo.backend.CollectionOptions;
import de.bwaldvogel.mongo.backend.CursorRegistry;
import de.bwaldvogel.mongo.backend.Index;
import de.bwaldvogel.mongo.backend.IndexKey;
import de.bwaldvogel.mongo.backend.KeyValue;
import de.bwaldvogel.mongo.backend.QueryResult;
import de.bwaldvogel.mongo.backend.h2.H2Backend;
import de.bwaldvogel.mongo.backend.h2.H2Collection;
import de.bwaldvogel.mongo.backend.h2.H2Database;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.oplog.Oplog;
import io.netty.channel.Channel;

/**
 * Leadtrail's local MongoDB-wire store: mongo-java-server on its H2 (MVStore) backend, with the
 * changes below that the stock {@code H2MongoServer} lacks, and the secondary indexes it ignores.
 *
 * <ul>
 *   <li><b>Documents are written as BSON, unique-index keys compared value by value</b>
 *       ({@link BsonDocumentType}, {@link KeyValueType}, {@link KeyValueIndex}): stock, MVStore
 *       Java-serialized both, which was most of this process's CPU under load. {@code --migrate}
 *       copies a file written the stock way into this format.
 *   <li><b>A read never sees a write half done</b> ({@code IdFirstCollection.updateDocuments}):
 *       stock, a reply could be encoded while an update was changing the same document object
 *       in place, so a read could pair a document's new version with its old fields. Here an
 *       update changes a copy and puts it in the map.
 *   <li><b>Every write is committed before it is acknowledged.</b> MVStore commits in the
 *       background about once a second, so a store killed right after acknowledging 500 inserts
 *       kept 0-6 of them. Here any command that is not a plain read commits the MVStore before
 *       its reply is sent. A commit writes the new chunk to the file (the OS page cache), so an
 *       acknowledged write survives the death of this process; concurrent commits queue on the
 *       store's lock and the later ones find nothing left to write (group commit for free).
 *   <li><b>A filter on {@code _id} plus other fields reads by {@code _id}.</b> The stock planner
 *       uses an index only when the filter names exactly the index's fields, so a conditional
 *       write such as {@code {_id: x, version: 3}} scanned the whole collection (16 ms at 20,000
 *       documents, growing with the collection). Here such a filter first looks the
 *       {@code _id} up (a value or an {@code $in}) and then matches the rest of the filter
 *       against the few documents found, as MongoDB does.
 *   <li><b>Non-unique indexes exist</b> ({@link SecondaryIndex}). Stock 1.47 accepts
 *       {@code createIndex} on, say, {@code {tenant_id, subject_id}} and ignores it, so every such
 *       lookup read the whole collection (5 s at 100,000 leads, longer than the services'
 *       deadline). Here a filter that gives an equal value (or an {@code $in}) for every field of
 *       a non-unique index reads that index's range and matches the rest of the filter against
 *       what it finds. A filter no index can answer is counted as a scan per collection; the
 *       command {@code {leadtrailStats: 1}} reports the counts, so tests can prove a query used
 *       an index.
 *   <li><b>An ordered write stops at its first error, and says how far it got.</b> Stock 1.47
 *       goes on with the updates after a failed one in an ordered {@code update} command, and
 *       answers an ordered {@code insert} with {@code n} = every document sent, even those it
 *       never inserted. Here an ordered multi-update runs one update at a time and stops at
 *       the first error, and {@code n} counts what was written, as MongoDB does.
 *   <li><b>A page cache of 256 MB</b> ({@code -Dleadtrail.cacheMb}) instead of MVStore's 16 MB: at
 *       100,000 leads (1.1 million documents, a 4 GB file) an update by {@code _id} took 32 ms and
 *       a 107,000-document scan 5 s, as pages were read back from disk; with the cache 1 ms and
 *       0.15 s.
 *   <li><b>It reports MongoDB 4.4 (wire version 9)</b>, the oldest that current PyMongo accepts;
 *       mongo-java-server 1.47 reports wire version 8.
 * </ul>
 *
 * <p>Usage: {@code LeadtrailMongoServer HOST PORT DATA_FILE}. SIGTERM closes the store cleanly.
 */
public final class LeadtrailMongoServer {

    /** Commands that never change data: everything else commits before it answers. */
    private static final Set<String> READS = Set.of(
        "find", "getmore", "count", "distinct", "aggregate", "listcollections", "listindexes",
        "listdatabases", "ping", "hello", "ismaster", "buildinfo", "serverstatus", "whatsmyuri",
        "getlasterror", "getparameter", "hostinfo", "dbstats", "collstats", "killcursors",
        "endsessions", "connectionstatus", "getlog", "getcmdlineopts", "features", "currentop");

    private static final MongoVersion MONGO_4_4 = new MongoVersion() {
        @Override
        public List<Integer> getVersionArray() {
            return List.of(4, 4, 0);
        }

        @Override
        public int getWireVersion() {
            return 9;
        }
    };

    /**
     * The one MVStore of this process. H2Database's constructor opens the existing collections
     * before a subclass's own fields are set, so the subclass reads the store from here.
     */
    private static MVStore store;

    /** The H2 backend, committing after every command that may have written. */
    static final class CommitBeforeReplyBackend extends H2Backend {
        CommitBeforeReplyBackend(MVStore mvStore) {
            super(mvStore);
        }

        @Override
        protected MongoDatabase openOrCreateDatabase(String databaseName) {
            return new IdFirstDatabase(databaseName, getMvStore(), getCursorRegistry());
        }

        /**
         * An ordered {@code update} command run one update at a time through the stock handler,
         * stopping at the first write error; indexes in the answer are those of the whole command.
         */
        @SuppressWarnings("unchecked")
        private Document orderedUpdate(Channel channel, String database, String command, Document query) {
            List<Document> updates = (List<Document>) query.get("updates");
            int n = 0;
            int nModified = 0;
            List<Document> upserted = new ArrayList<>();
            List<Document> writeErrors = new ArrayList<>();
            for (int i = 0; i < updates.size(); i++) {
                Document single = new Document();
                for (String key : query.keySet()) { // the command name stays the first key
                    single.put(key, key.equals("updates") ? List.of(updates.get(i)) : query.get(key));
                }
                Document answer = super.handleCommand(channel, database, command, single);
                n += ((Number) answer.getOrDefault("n", 0)).intValue();
                nModified += ((Number) answer.getOrDefault("nModified", 0)).intValue();
                for (Object item : (List<Object>) answer.getOrDefault("upserted", List.of())) {
                    Document entry = ((Document) item).clone();
                    entry.put("index", Integer.valueOf(i));
                    upserted.add(entry);
                }
                List<Object> errors = (List<Object>) answer.getOrDefault("writeErrors", List.of());
                if (!errors.isEmpty()) {
                    Document error = ((Document) errors.get(0)).clone();
                    error.put("index", Integer.valueOf(i));
                    writeErrors.add(error);
                    break;
                }
            }
            Document response = new Document("n", Integer.valueOf(n));
            response.put("nModified", Integer.valueOf(nModified));
            if (!upserted.isEmpty()) {
                response.put("upserted", upserted);
            }
            if (!writeErrors.isEmpty()) {
                response.put("writeErrors", writeErrors);
            }
            response.put("ok", Double.valueOf(1.0));
            return response;
        }

        @Override
        public Document handleCommand(Channel channel, String database, String command, Document query) {
            if (command.equals("leadtrailStats")) {
                return stats(database);
            }
            long started = System.nanoTime();
            try {
                if (command.equalsIgnoreCase("update") && isOrdered(query) && sizeOf(query, "updates") > 1) {
                    return orderedUpdate(channel, database, command, query);
                }
                Document response = super.handleCommand(channel, database, command, query);
                if (command.equalsIgnoreCase("insert")) {
                    countInserted(query, response);
                }
                return response;
            } finally {
                // Also after an error: an ordered insert may have written documents before the
                // one that failed, and the client is told so.
                if (!READS.contains(command.toLowerCase(Locale.ROOT))) {
                    commit();
                }
                logIfSlow(database, command, query, (System.nanoTime() - started) / 1_000_000);
            }
        }
    }

    /** Commands slower than this are logged (their shape only: field names, never values). */
    private static final long SLOW_MS = Long.getLong("leadtrail.slowMs", 500);

    private static void logIfSlow(String database, String command, Document query, long millis) {
        if (millis < SLOW_MS) {
            return;
        }
        Object filter = query.get("filter") != null ? query.get("filter") : query.get("q");
        if (filter == null && query.get("updates") instanceof List<?> updates && !updates.isEmpty()
            && updates.get(0) instanceof Document first) {
            filter = first.get("q");
        }
        String shape = filter instanceof Document document ? document.keySet().toString() : "";
        System.out.println("leadtrail-mongo: slow " + command + " on " + database + "."
            + query.get(command) + " filter " + shape + ": " + millis + " ms");
    }

    /** Filters answered by reading a whole collection, per "database.collection". */
    private static final Map<String, AtomicLong> SCANS = new ConcurrentHashMap<>();

    private static Document stats(String database) {
        Document scans = new Document();
        String prefix = database + ".";
        SCANS.forEach((name, count) -> {
            if (name.startsWith(prefix)) {
                scans.put(name.substring(prefix.length()), Long.valueOf(count.get()));
            }
        });
        Document response = new Document("scans", scans);
        response.put("ok", Double.valueOf(1.0));
        return response;
    }

    private static boolean isOrdered(Document command) {
        Object ordered = command.get("ordered");
        return ordered == null || Boolean.TRUE.equals(ordered); // MongoDB's default is ordered
    }

    private static int sizeOf(Document command, String field) {
        return command.get(field) instanceof List<?> list ? list.size() : 0;
    }

    /** {@code n} of an insert: the documents written, not the documents sent. */
    private static void countInserted(Document command, Document response) {
        if (!(response.get("writeErrors") instanceof List<?> errors) || errors.isEmpty()) {
            return;
        }
        int sent = sizeOf(command, "documents");
        int written = isOrdered(command)
            ? ((Number) ((Document) errors.get(0)).get("index")).intValue() // it stopped there
            : sent - errors.size();
        response.put("n", Integer.valueOf(written));
    }

    /** An H2 database whose collections plan {@code _id}-first (see the class comment). */
    static final class IdFirstDatabase extends H2Database {
        IdFirstDatabase(String databaseName, MVStore mvStore, CursorRegistry cursorRegistry) {
            super(databaseName, mvStore, cursorRegistry);
        }

        @Override
        protected MongoCollection<Object> openOrCreateCollection(String collectionName, CollectionOptions options) {
            // The same map names as H2Database, so data written by either opens in the other.
            String fullName = getFullCollectionNamespace(collectionName);
            MVMap<Object, Document> dataMap = store.openMap("databases." + fullName,
                new MVMap.Builder<Object, Document>().valueType(BsonDocumentType.INSTANCE));
            MVMap<String, Object> metaMap = store.openMap("meta." + fullName);
            return new IdFirstCollection(this, collectionName, options, dataMap, metaMap, cursorRegistry);
        }

        @Override
        protected Index<Object> openOrCreateUniqueIndex(String collectionName, String indexName,
                                                        List<IndexKey> keys, boolean sparse) {
            String mapName = getFullCollectionNamespace(collectionName) + "._index_" + indexName;
            MVMap<KeyValue, Object> entries = store.openMap(mapName,
                new MVMap.Builder<KeyValue, Object>().keyType(KeyValueType.INSTANCE));
            return new KeyValueIndex(entries, indexName, keys, sparse);
        }

        @Override
        protected Index<Object> openOrCreateSecondaryIndex(String collectionName, String indexName,
                                                           List<IndexKey> keys, boolean sparse) {
            boolean nested = keys.stream().anyMatch(key -> key.getKey().contains("."));
            if (sparse || nested) { // not needed by Leadtrail: the stock (ignoring) behaviour
                return super.openOrCreateSecondaryIndex(collectionName, indexName, keys, sparse);
            }
            // The map name H2Database gives a unique index of the same name, so dropIndex drops it.
            String mapName = getFullCollectionNamespace(collectionName) + "._index_" + indexName;
            return new SecondaryIndex(store.openMap(mapName), indexName, keys);
        }
    }

    static final class IdFirstCollection extends H2Collection {
        IdFirstCollection(MongoDatabase database, String collectionName, CollectionOptions options,
                          MVMap<Object, Document> dataMap, MVMap<String, Object> metaMap,
                          CursorRegistry cursorRegistry) {
            super(database, collectionName, options, dataMap, metaMap, cursorRegistry);
        }

        /**
         * True while an update runs, which finds its documents through the queries below. Set only
         * under this collection's lock (the methods that set it are synchronized); a read outside
         * it (the {@code count} command) may see it set and only copies needlessly.
         */
        private boolean updating;

        /**
         * A document in the map is never changed: an update works on a copy and puts that copy.
         *
         * <p>MVStore hands out the very document objects its pages hold, and stock
         * {@code updateDocuments} changes the document its query found in place, field by field,
         * while a read on another connection may be encoding that same object into its reply
         * (replies are encoded after the lock is released). That read could pair a new
         * {@code version} with the old facts, and a write conditional on that version then
         * dropped the facts it never saw. Reads still get the stored objects, uncopied.
         */
        @Override
        public synchronized Document updateDocuments(Document selector, Document updateQuery,
                                                     ArrayFilters arrayFilters, boolean isMulti,
                                                     boolean isUpsert, Oplog oplog) {
            updating = true;
            try {
                return super.updateDocuments(selector, updateQuery, arrayFilters, isMulti, isUpsert, oplog);
            } finally {
                updating = false;
            }
        }

        /** As {@link #updateDocuments}: the document found is copied before it is changed. */
        @Override
        public synchronized Document findAndModify(Document query) {
            updating = true;
            try {
                return super.findAndModify(query);
            } finally {
                updating = false;
            }
        }

        @Override
        protected QueryResult createQueryResult(List<Document> matchedDocuments, int batchSize) {
            if (!updating) {
                return super.createQueryResult(matchedDocuments, batchSize);
            }
            List<Document> copies = new ArrayList<>(matchedDocuments.size());
            for (Document document : matchedDocuments) {
                copies.add(document.cloneDeeply());
            }
            return super.createQueryResult(copies, batchSize);
        }

        @Override
        protected QueryResult queryDocuments(Document query, Document orderBy, int numberToSkip, int limit,
                                             int batchSize, Document fieldSelector) {
            if (query.size() < 2 || !isIdLookup(query.get("_id"))) {
                QueryResult ranged = dateRangeQuery(query, orderBy, numberToSkip, limit, batchSize, fieldSelector);
                if (ranged != null) {
                    return ranged;
                }
                List<Object> positions = secondaryLookup(query);
                if (positions != null) {
                    return matchDocumentsFromStream(positions.stream().map(this::getDocument)
                            .filter(document -> document != null), query, orderBy, numberToSkip, limit,
                        batchSize, fieldSelector);
                }
                if (getIndexes().stream().noneMatch(index -> index.canHandle(query))) {
                    SCANS.computeIfAbsent(getFullName(), name -> new AtomicLong()).incrementAndGet();
                }
                return super.queryDocuments(query, orderBy, numberToSkip, limit, batchSize, fieldSelector);
            }
            // The _id index answers {_id: ...} alone; the whole filter then runs on its result.
            QueryResult byId = super.queryDocuments(new Document("_id", query.get("_id")), null, 0, 0, 0, null);
            List<Document> candidates = byId.collectDocuments();
            return matchDocumentsFromStream(candidates.stream(), query, orderBy, numberToSkip, limit, batchSize,
                fieldSelector);
        }

        /** Candidate positions from the secondary index with the most fields that the filter gives
         * equal values for, or null when there is none. */
        private List<Object> secondaryLookup(Document query) {
            SecondaryIndex best = secondaryLookupIndex(query);
            if (best == null) {
                return null;
            }
            List<List<Object>> combinations = combinations(best.fields(), query);
            if (combinations == null) {
                return null;
            }
            Set<Object> positions = new java.util.LinkedHashSet<>();
            for (List<Object> values : combinations) {
                positions.addAll(best.positions(values));
            }
            return new ArrayList<>(positions);
        }

        /** The secondary index with the most fields that the filter gives equal values for. */
        private SecondaryIndex secondaryLookupIndex(Document query) {
            SecondaryIndex best = null;
            for (Index<Object> index : getIndexes()) {
                if (index instanceof SecondaryIndex secondary
                    && secondary.fields().stream().allMatch(field -> equalValues(query.get(field)) != null)
                    && (best == null || secondary.fields().size() > best.fields().size())) {
                    best = secondary;
                }
            }
            return best;
        }

        /**
         * A filter that gives equal values for every field of a secondary index but the last and
         * a date range ({@code $gt}, {@code $gte}, {@code $lt}, {@code $lte}) for the last, with no
         * index answering the filter by equal values alone: the index's range, read in date
         * order and matched against the whole filter. Sorted by that date (or not sorted) and
         * with one set of equal values, only as many documents are read as the limit needs.
         * Null when no index fits.
         */
        private QueryResult dateRangeQuery(Document query, Document orderBy, int numberToSkip, int limit,
                                           int batchSize, Document fieldSelector) {
            if (secondaryLookupIndex(query) != null) {
                return null; // equal values on a whole index: the plain lookup
            }
            for (Index<Object> index : getIndexes()) {
                if (!(index instanceof SecondaryIndex secondary) || secondary.fields().size() < 2) {
                    continue;
                }
                List<String> fields = secondary.fields();
                String last = fields.get(fields.size() - 1);
                List<String> prefix = fields.subList(0, fields.size() - 1);
                if (!prefix.stream().allMatch(field -> equalValues(query.get(field)) != null)
                    || !(query.get(last) instanceof Document range)
                    || range.isEmpty() || !RANGE.containsAll(range.keySet())
                    || !range.values().stream().allMatch(LeadtrailMongoServer::isDate)) {
                    continue;
                }
                List<List<Object>> combinations = combinations(prefix, query);
                if (combinations == null) {
                    return null;
                }
                Instant lower = later(instant(range.get("$gt")), instant(range.get("$gte")));
                boolean lowerInclusive = lower == null || !lower.equals(instant(range.get("$gt")));
                Instant upper = earlier(instant(range.get("$lt")), instant(range.get("$lte")));
                boolean upperInclusive = upper == null || !upper.equals(instant(range.get("$lt")));
                boolean inDateOrder = combinations.size() == 1 && (orderBy == null || orderBy.isEmpty()
                    || (orderBy.size() == 1 && isAscending(orderBy.get(last))));
                java.util.stream.Stream<Object> positions = combinations.stream()
                    .flatMap(values -> java.util.stream.StreamSupport.stream(
                        java.util.Spliterators.spliteratorUnknownSize(secondary.positionsInDateRange(values,
                            lower, lowerInclusive, upper, upperInclusive), java.util.Spliterator.ORDERED),
                        false));
                java.util.stream.Stream<Document> documents = positions.map(this::getDocument)
                    .filter(document -> document != null);
                return matchDocumentsFromStream(documents, query, inDateOrder ? null : orderBy, numberToSkip,
                    limit, batchSize, fieldSelector);
            }
            return null;
        }

        private static boolean isAscending(Object direction) {
            return direction instanceof Number number && number.doubleValue() == 1.0;
        }

        private static final Set<String> RANGE = Set.of("$gt", "$gte", "$lt", "$lte");

        /** Every combination of the equal values the filter gives the fields, or null if too many. */
        private static List<List<Object>> combinations(List<String> fields, Document query) {
            List<List<Object>> combinations = List.of(List.of());
            for (String field : fields) {
                List<List<Object>> longer = new ArrayList<>();
                for (List<Object> start : combinations) {
                    for (Object value : equalValues(query.get(field))) {
                        List<Object> next = new ArrayList<>(start);
                        next.add(value);
                        longer.add(next);
                    }
                }
                combinations = longer;
                if (combinations.size() > MAX_COMBINATIONS) {
                    return null;
                }
            }
            return combinations;
        }

        private static final int MAX_COMBINATIONS = 1_000;

        /** The values a filter's condition on one field admits by equality, or null if it is
         * anything else (a range, a regex, an array to match as a whole, no condition). */
        private static List<Object> equalValues(Object condition) {
            if (condition instanceof Document document) {
                if (document.keySet().equals(Set.of("$in")) && document.get("$in") instanceof List<?> values
                    && values.stream().noneMatch(value -> value instanceof List || value instanceof Document
                        || value instanceof java.util.regex.Pattern)) {
                    return new ArrayList<>(values);
                }
                if (document.keySet().equals(Set.of("$eq"))) {
                    return equalValues(document.get("$eq"));
                }
                return null;
            }
            if (condition == null || condition instanceof List || condition instanceof java.util.regex.Pattern
                || condition.getClass().getSimpleName().equals("BsonRegularExpression")) {
                return null; // null: no condition (a {field: null} filter is also left to a scan)
            }
            return List.of(condition);
        }

        /** A plain value or {@code {$in: [...]}}: what the unique {@code _id} index can look up. */
        private static boolean isIdLookup(Object value) {
            if (value == null) {
                return false;
            }
            if (value instanceof Document document) {
                return document.keySet().equals(Set.of("$in"));
            }
            return true;
        }
    }

    private static boolean isDate(Object value) {
        return value instanceof Instant || value instanceof java.util.Date;
    }

    private static Instant instant(Object value) {
        return value instanceof java.util.Date date ? date.toInstant() : (Instant) value;
    }

    /** The later of two optional bounds (for lower bounds: both must hold). */
    private static Instant later(Instant a, Instant b) {
        return a == null ? b : b == null ? a : a.isAfter(b) ? a : b;
    }

    private static Instant earlier(Instant a, Instant b) {
        return a == null ? b : b == null ? a : a.isBefore(b) ? a : b;
    }

    private LeadtrailMongoServer() {
    }

    /**
     * Copies a store file written before documents and unique-index keys had their own types
     * ({@link BsonDocumentType}, {@link KeyValueType}: everything was Java-serialized) into a
     * new file that this server reads, map by map, and checks that every map has as many
     * entries as before. The old file is only read.
     */
    static void migrate(String from, String to) {
        int cacheMb = Integer.getInteger("leadtrail.cacheMb", 256);
        MVStore source = new MVStore.Builder().fileName(from).readOnly().cacheSize(cacheMb).open();
        MVStore target = new MVStore.Builder().fileName(to).cacheSize(cacheMb).open();
        try {
            for (String name : source.getMapNames()) {
                MVMap<Object, Object> in = source.openMap(name);
                MVMap<Object, Object> out = target.openMap(name, typedLike(name, in));
                long copied = 0;
                for (Map.Entry<Object, Object> entry : in.entrySet()) {
                    out.put(entry.getKey(), entry.getValue());
                    if (++copied % 10_000 == 0) {
                        target.commit();
                    }
                }
                if (out.sizeAsLong() != in.sizeAsLong()) {
                    throw new IllegalStateException("map " + name + ": " + in.sizeAsLong()
                        + " entries before, " + out.sizeAsLong() + " after");
                }
                target.commit();
                System.out.println("leadtrail-mongo: migrated " + name + " (" + copied + " entries)");
            }
        } finally {
            target.close();
            source.close();
        }
    }

    /** The builder this server opens the map {@code name} with (see IdFirstDatabase). */
    @SuppressWarnings({"unchecked", "rawtypes"})
    private static MVMap.Builder<Object, Object> typedLike(String name, MVMap<Object, Object> old) {
        MVMap.Builder builder = new MVMap.Builder<>();
        if (name.startsWith("databases.")) {
            builder.valueType(BsonDocumentType.INSTANCE);
        } else if (!old.isEmpty() && old.firstKey() instanceof KeyValue) {
            builder.keyType(KeyValueType.INSTANCE); // a unique index (secondary ones key by string)
        }
        return builder;
    }

    public static void main(String[] args) {
        if (args.length == 3 && args[0].equals("--migrate")) {
            migrate(args[1], args[2]);
            return;
        }
        if (args.length != 3) {
            System.err.println("usage: LeadtrailMongoServer HOST PORT DATA_FILE");
            System.err.println("       LeadtrailMongoServer --migrate OLD_DATA_FILE NEW_DATA_FILE");
            System.exit(2);
        }
        String host = args[0];
        int port = Integer.parseInt(args[1]);
        String dataFile = args[2];

        // A page cache that holds the hot part of a large store: MVStore's default (16 MB)
        // made every commit re-read pages from disk once the store passed a few GB.
        int cacheMb = Integer.getInteger("leadtrail.cacheMb", 256);
        store = new MVStore.Builder().fileName(dataFile).cacheSize(cacheMb).open();
        CommitBeforeReplyBackend backend = new CommitBeforeReplyBackend(store);
        backend.version(MONGO_4_4);
        MongoServer server = new MongoServer(backend);
        server.bind(new InetSocketAddress(host, port));
        System.out.println("leadtrail-mongo: listening on " + host + ":" + port + ", data in " + dataFile);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.out.println("leadtrail-mongo: shutting down");
            server.shutdownNow(); // closes the clients, then the backend (and the MVStore)
        }, "leadtrail-mongo-shutdown"));
    }
}
