import java.nio.ByteBuffer;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import org.h2.mvstore.DataUtils;
import org.h2.mvstore.WriteBuffer;
import org.h2.mvstore.type.BasicDataType;

import de.bwaldvogel.mongo.backend.KeyValue;
import de.bwaldvogel.mongo.backend.Missing;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.wire.bson.BsonDecoder;
import de.bwaldvogel.mongo.wire.bson.BsonEncoder;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;

/**
 * How a unique index's keys (the {@code _id} index of every collection, and Leadtrail's unique
 * indexes) are ordered and written: compared value by value, written as BSON.
 *
 * <p>{@code KeyValue} is not {@code Comparable}, so MVStore's {@code ObjectDataType} ordered
 * two keys by Java-serializing both and comparing the bytes, on every step of every binary
 * search: a lookup by {@code _id} serialized some forty objects. Here strings, numbers,
 * booleans and dates compare directly; anything else (an ObjectId, a sub-document) by its BSON
 * bytes. The order only has to be total and agree with equality of the normalized values the
 * index holds (numbers are doubles there, a missing field is null), which both ways are.
 */
final class KeyValueType extends BasicDataType<KeyValue> {

    static final KeyValueType INSTANCE = new KeyValueType();

    private KeyValueType() {
    }

    @Override
    public int compare(KeyValue a, KeyValue b) {
        int common = Math.min(a.size(), b.size());
        for (int i = 0; i < common; i++) {
            int order = compareValues(a.get(i), b.get(i));
            if (order != 0) {
                return order;
            }
        }
        return Integer.compare(a.size(), b.size());
    }

    @SuppressWarnings({"unchecked", "rawtypes"})
    private static int compareValues(Object a, Object b) {
        boolean aNull = Missing.isNullOrMissing(a);
        boolean bNull = Missing.isNullOrMissing(b);
        if (aNull || bNull) {
            return Boolean.compare(!aNull, !bNull); // null first
        }
        if (a.getClass() != b.getClass()) {
            return a.getClass().getName().compareTo(b.getClass().getName());
        }
        if (a instanceof String || a instanceof Double || a instanceof Long || a instanceof Integer
            || a instanceof Boolean || a instanceof Instant) {
            return ((Comparable) a).compareTo(b);
        }
        return Arrays.compareUnsigned(encode(List.of(a)), encode(List.of(b)));
    }

    @Override
    public int getMemory(KeyValue key) {
        int size = 48;
        for (Object value : key) {
            size += value instanceof String text ? 40 + 2 * text.length() : 32;
        }
        return size;
    }

    @Override
    public void write(WriteBuffer buffer, KeyValue key) {
        List<Object> values = new ArrayList<>(key.size());
        for (Object value : key) {
            values.add(Missing.isNullOrMissing(value) ? null : value);
        }
        byte[] bytes = encode(values);
        buffer.putVarInt(bytes.length);
        buffer.put(bytes);
    }

    @Override
    public KeyValue read(ByteBuffer buffer) {
        byte[] bytes = new byte[DataUtils.readVarInt(buffer)];
        buffer.get(bytes);
        ByteBuf encoded = Unpooled.wrappedBuffer(bytes);
        try {
            return new KeyValue((List<?>) BsonDecoder.decodeBson(encoded).get("k"));
        } finally {
            encoded.release();
        }
    }

    @Override
    public KeyValue[] createStorage(int size) {
        return new KeyValue[size];
    }

    private static byte[] encode(List<Object> values) {
        ByteBuf encoded = Unpooled.buffer(64);
        try {
            BsonEncoder.encodeDocument(new Document("k", values), encoded);
            byte[] bytes = new byte[encoded.readableBytes()];
            encoded.readBytes(bytes);
            return bytes;
        } finally {
            encoded.release();
        }
    }
}
