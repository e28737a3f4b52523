// Driven by tests/java_axmlrpc.rs: aXMLRPC (a Java XML-RPC client) against the echo example.
// Usage: java -cp .:axmlrpc.jar EchoCheck URL plain|apache; prints "ok" when every check held.
// "apache" adds aXMLRPC's FLAGS_APACHE_WS (its Apache ws-xmlrpc compatibility mode).
import de.timroes.axmlrpc.XMLRPCClient;
import de.timroes.axmlrpc.XMLRPCServerException;
import java.net.URL;
import java.util.*;

public class EchoCheck {
    static void same(Object got, Object want, String what) {
        boolean eq = (want instanceof byte[]) ? (got instanceof byte[] && Arrays.equals((byte[]) got, (byte[]) want))
            : (want instanceof Object[]) ? (got instanceof Object[] && Arrays.deepEquals((Object[]) got, (Object[]) want))
            : Objects.equals(got, want);
        if (!eq) throw new AssertionError(what + ": sent " + want + ", got " + got + " (" + (got == null ? "null" : got.getClass().getName()) + ")");
    }
    public static void main(String[] args) throws Exception {
        URL url = new URL(args[0]);
        int flags = XMLRPCClient.FLAGS_8BYTE_INT | (args[1].equals("apache") ? XMLRPCClient.FLAGS_APACHE_WS : XMLRPCClient.FLAGS_NIL);
        XMLRPCClient c = new XMLRPCClient(url, flags);
        Object[] scalars = {0, 7, -2147483648, 2147483647, 9000000000L, -9223372036854775808L, true, false, 2.5, -0.125, 1e300,
            "", "plain", "h\u00e9llo <&> ' \" ]]> \u2713 \ud83e\udd80", null, new byte[]{0, 1, (byte) 255}, new byte[0]};
        for (Object v : scalars) same(c.call("echo", v), v, "echo");
        Date when = new GregorianCalendar(1998, 6, 17, 14, 8, 55).getTime();
        same(c.call("echo", when), when, "echo date");
        Object[] arr = {1, "two", 3.5, new Object[]{4, new Object[0]}, null, false};
        same(c.call("echo", (Object) arr), arr, "echo array");
        Map<String, Object> s = new HashMap<>();
        s.put("name", "bash"); s.put("id", 7); s.put("tags", new Object[]{"f40"}); s.put("nested", new HashMap<String, Object>());
        Object got = c.call("echo", s);
        if (!(got instanceof Map)) throw new AssertionError("struct came back as " + got);
        Map<?, ?> m = (Map<?, ?>) got;
        same(m.keySet(), s.keySet(), "struct keys");
        same(m.get("name"), "bash", "struct name");
        same(m.get("tags"), new Object[]{"f40"}, "struct tags");
        Map<?, ?> b = (Map<?, ?>) c.call("getBuild", 7);
        same(b.get("id"), 7, "getBuild id");
        same(b.get("release"), "3.fc40", "getBuild release");
        same(b.get("volume_id_set"), true, "getBuild bool");
        same(b.get("score"), 0.5, "getBuild score");
        try {
            c.call("fail", 1005, "no such build");
            throw new AssertionError("fail answered no fault");
        } catch (XMLRPCServerException e) {
            if (e.getErrorNr() != 1005 || !e.getMessage().contains("no such build")) throw new AssertionError("fault " + e.getErrorNr() + " " + e.getMessage());
        }
        try {
            c.call("nosuch");
            throw new AssertionError("nosuch answered no fault");
        } catch (XMLRPCServerException e) {
            if (e.getErrorNr() != -32601) throw new AssertionError("fault " + e.getErrorNr() + " " + e.getMessage());
        }
        Object[] names = (Object[]) c.call("system.listMethods");
        if (!Arrays.asList(names).contains("echo")) throw new AssertionError("listMethods " + Arrays.toString(names));
        System.out.println("ok");
    }
}
