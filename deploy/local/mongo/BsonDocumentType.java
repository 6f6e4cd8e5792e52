import java.nio.ByteBuffer;
import java.util.Collection;
import java.util.Map;

import org.h2.mvstore.DataUtils;
import org.h2.mvstore.WriteBuffer;
import org.h2.mvstore.type.BasicDataType;

import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.wire.bson.BsonDecoder;
import de.bwaldvogel.mongo.wire.bson.BsonEncoder;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;

/**
 * How the store writes a collection's documents to its file: as BSON, the wire's own encoding.
 *
 * <p>The stock H2 backend stores documents with MVStore's {@code ObjectDataType}, which falls
 * back to Java serialization for them. Every commit writes each changed page whole, so each
 * acknowledged write re-serialized dozens of documents through {@code ObjectOutputStream}
 * (class descriptors, block data, a handle table per object): measured with Java Flight
 * Recorder under 32 clients upserting, that was most of the store's CPU. BSON is compact and
 * written in one pass by the same encoder that answers queries.
 */
final class BsonDocumentType extends BasicDataType<Document> {

    static final BsonDocumentType INSTANCE = new BsonDocumentType();

    private BsonDocumentType() {
    }

    @Override
    public int getMemory(Document document) {
        return estimate(document);
    }

    @Override
    public void write(WriteBuffer buffer, Document document) {
        ByteBuf encoded = Unpooled.buffer(256);
        try {
            BsonEncoder.encodeDocument(document, encoded);
            int length = encoded.readableBytes();
            buffer.putVarInt(length);
            byte[] bytes = new byte[length];
            encoded.readBytes(bytes);
            buffer.put(bytes);
        } finally {
            encoded.release();
        }
    }

    @Override
    public Document read(ByteBuffer buffer) {
        int length = DataUtils.readVarInt(buffer);
        byte[] bytes = new byte[length];
        buffer.get(bytes);
        ByteBuf encoded = Unpooled.wrappedBuffer(bytes);
        try {
            return BsonDecoder.decodeBson(encoded);
        } finally {
            encoded.release();
        }
    }

    @Override
    public Document[] createStorage(int size) {
        return new Document[size];
    }

    /** A rough size in memory, for MVStore's page cache accounting (not exact, never zero). */
    private static int estimate(Object value) {
        if (value instanceof Map<?, ?> map) {
            int size = 64;
            for (Map.Entry<?, ?> entry : map.entrySet()) {
                size += 48 + estimate(entry.getKey()) + estimate(entry.getValue());
            }
            return size;
        }
        if (value instanceof Collection<?> items) {
            int size = 40;
            for (Object item : items) {
                size += 8 + estimate(item);
            }
            return size;
        }
        if (value instanceof String text) {
            return 40 + 2 * text.length();
        }
        if (value instanceof byte[] bytes) {
            return 16 + bytes.length;
        }
        return 24;
    }
}
