import java.time.Instant;
import java.util.ArrayList;
import java.util.Date;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

import org.h2.mvstore.MVMap;

import de.bwaldvogel.mongo.MongoCollection;
import de.bwaldvogel.mongo.backend.Index;
import de.bwaldvogel.mongo.backend.IndexKey;
import de.bwaldvogel.mongo.backend.KeyValue;
import de.bwaldvogel.mongo.backend.Missing;
import de.bwaldvogel.mongo.bson.Document;

/**
 * A non-unique index that mongo-java-server 1.47 does not have: it accepts such an index and
 * ignores it ({@code EmptyIndex}), so every filter on, say, {@code {tenant_id, subject_id}}
 * read the whole collection.
 *
 * <p>Kept in its own MVStore map, written in the same commit as the documents: each entry's key
 * is the document's index values followed by its position ({@code _id}), each part encoded with
 * its type and length so that no two different value lists share an encoding and the keys of
 * one value list are a contiguous range of the sorted map. A lookup by equal values is one range
 * read. Dates are written as fixed-width numbers, so the keys of one prefix are also in date
 * order: equal values on all fields but the last and a date range on the last one ({@code {state:
 * "pending", due_at: {$lte: now}}}) is one range read too. Documents with array values get one
 * entry per element, as in MongoDB (multikey).
 *
 * <p>The index never answers a query through the stock planner ({@link #canHandle} is false):
 * {@code LeadtrailMongoServer}'s collections look it up themselves and match the whole filter
 * against what it returns, so a filter that names more fields than the index still uses it.
 */
final class SecondaryIndex extends Index<Object> {

    private final MVMap<String, Object> entries;

    SecondaryIndex(MVMap<String, Object> entries, String name, List<IndexKey> keys) {
        super(name, keys, false);
        this.entries = entries;
    }

    /** The index's field names, in order. */
    List<String> fields() {
        return keys();
    }

    /** The positions of the documents whose index values equal {@code values} (one per field). */
    List<Object> positions(List<Object> values) {
        Document probe = new Document();
        List<String> fields = keys();
        for (int i = 0; i < fields.size(); i++) {
            probe.put(fields.get(i), values.get(i));
        }
        List<Object> found = new ArrayList<>();
        for (KeyValue normalized : getKeyValues(probe)) {
            String prefix = encode(normalized);
            Iterator<String> keys = entries.keyIterator(prefix);
            while (keys.hasNext()) {
                String key = keys.next();
                if (!key.startsWith(prefix)) {
                    break;
                }
                found.add(entries.get(key));
            }
        }
        return found;
    }

    /**
     * The positions of the documents whose first fields equal {@code prefixValues} and whose last
     * field is a date within the bounds (null: unbounded), read lazily in date order: a caller
     * that wants the first few in that order reads only those.
     */
    Iterator<Object> positionsInDateRange(List<Object> prefixValues, Instant lower, boolean lowerInclusive,
                                          Instant upper, boolean upperInclusive) {
        List<String> fields = keys();
        Document probe = new Document();
        for (int i = 0; i < fields.size() - 1; i++) {
            probe.put(fields.get(i), prefixValues.get(i));
        }
        probe.put(fields.get(fields.size() - 1), Instant.EPOCH); // only the prefix counts
        List<Object> normalized = new ArrayList<>();
        getKeyValues(probe).iterator().next().forEach(normalized::add);
        StringBuilder prefix = new StringBuilder();
        for (Object value : normalized.subList(0, normalized.size() - 1)) {
            prefix.append(part(value));
        }
        String datePrefix = prefix + typePart(Instant.class);
        String start = lower == null ? datePrefix : prefix + part(lower);
        String lowerText = lower == null ? null : dateText(lower);
        String upperText = upper == null ? null : dateText(upper);
        Iterator<String> keys = entries.keyIterator(start);
        return new Iterator<>() {
            private Object next = advance();

            private Object advance() {
                while (keys.hasNext()) {
                    String key = keys.next();
                    if (!key.startsWith(datePrefix)) {
                        return null;
                    }
                    // after the type part: "<length>:<text>", a fixed-width text
                    int colon = key.indexOf(':', datePrefix.length());
                    String text = key.substring(colon + 1, colon + 1 + DATE_WIDTH);
                    if (lowerText != null && !lowerInclusive && text.equals(lowerText)) {
                        continue;
                    }
                    int vsUpper = upperText == null ? -1 : text.compareTo(upperText);
                    if (vsUpper > 0 || (vsUpper == 0 && !upperInclusive)) {
                        return null;
                    }
                    Object position = entries.get(key);
                    if (position != null) { // removed since the iterator passed it
                        return position;
                    }
                }
                return null;
            }

            @Override
            public boolean hasNext() {
                return next != null;
            }

            @Override
            public Object next() {
                if (next == null) {
                    throw new java.util.NoSuchElementException();
                }
                Object current = next;
                next = advance();
                return current;
            }
        };
    }

    @Override
    public Object getPosition(Document document) {
        return null; // not unique: the _id index names a document's position
    }

    @Override
    public void checkAdd(Document document, MongoCollection<Object> collection) {
        // a non-unique index refuses nothing
    }

    @Override
    public synchronized void add(Document document, Object position, MongoCollection<Object> collection) {
        Object stored = Missing.ofNullable(position);
        for (String key : entryKeys(document, position)) {
            entries.put(key, stored);
        }
    }

    @Override
    public synchronized Object remove(Document document) {
        Object position = document.get("_id");
        for (String key : entryKeys(document, position)) {
            entries.remove(key);
        }
        return Missing.ofNullable(position); // the same answer as the _id index
    }

    @Override
    public boolean canHandle(Document query) {
        return false;
    }

    @Override
    public Iterable<Object> getPositions(Document query) {
        throw new UnsupportedOperationException("looked up by LeadtrailMongoServer's planner only");
    }

    @Override
    public long getCount() {
        return entries.sizeAsLong();
    }

    @Override
    public boolean isEmpty() {
        return entries.isEmpty();
    }

    @Override
    public long getDataSize() {
        return getCount();
    }

    @Override
    public void checkUpdate(Document oldDocument, Document newDocument, MongoCollection<Object> collection) {
        // a non-unique index refuses nothing
    }

    @Override
    public synchronized void updateInPlace(Document oldDocument, Document newDocument, Object position,
                                           MongoCollection<Object> collection) {
        if (nullAwareEqualsKeys(oldDocument, newDocument)) {
            return;
        }
        for (String key : entryKeys(oldDocument, position)) {
            entries.remove(key);
        }
        add(newDocument, position, collection);
    }

    @Override
    public void drop() {
        entries.clear();
    }

    private Set<String> entryKeys(Document document, Object position) {
        String tail = part(Missing.isNullOrMissing(position) ? null : position);
        Set<String> keys = new LinkedHashSet<>();
        for (KeyValue values : getKeyValues(document)) {
            keys.add(encode(values) + tail);
        }
        return keys;
    }

    /** The normalized values, each as its type and its text, both length-prefixed. */
    static String encode(KeyValue values) {
        StringBuilder encoded = new StringBuilder();
        for (Object value : values) {
            encoded.append(part(value));
        }
        return encoded.toString();
    }

    private static final int DATE_WIDTH = 20;

    private static String part(Object value) {
        if (Missing.isNullOrMissing(value)) {
            return "0:"; // null and a missing field are equal, as in MongoDB's equality match
        }
        if (value instanceof Date date) {
            value = date.toInstant();
        }
        String text = value instanceof Instant instant ? dateText(instant) : value.toString();
        return typePart(value.getClass()) + text.length() + ":" + text;
    }

    private static String typePart(Class<?> type) {
        String name = type.getName();
        return name.length() + ":" + name;
    }

    /** Milliseconds since the epoch, sign-flipped and zero-padded: text order is time order. */
    private static String dateText(Instant instant) {
        String digits = Long.toUnsignedString(instant.toEpochMilli() ^ Long.MIN_VALUE);
        return "0".repeat(DATE_WIDTH - digits.length()) + digits;
    }
}
