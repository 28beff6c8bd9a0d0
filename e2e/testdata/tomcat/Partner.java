// A partner for the end-to-end path test: an embedded Tomcat with a public
// API under /v2/ and an admin area under /admin/ that outgate must never let
// a relay request reach. Run in source-file mode (java -cp <tomcat jars>
// Partner.java <basedir>), so the JRE is enough: no javac, no build step.
// It prints "PORT <n>" once it listens on 127.0.0.1.
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.catalina.Context;
import org.apache.catalina.connector.Connector;
import org.apache.catalina.startup.Tomcat;

public class Partner {
    static final AtomicInteger adminHits = new AtomicInteger();

    public static void main(String[] args) throws Exception {
        Tomcat tomcat = new Tomcat();
        tomcat.setBaseDir(args[0]);
        Connector connector = new Connector();
        connector.setPort(0);
        connector.setProperty("address", "127.0.0.1");
        tomcat.getService().addConnector(connector);
        tomcat.setConnector(connector);
        Context ctx = tomcat.addContext("", null);

        Tomcat.addServlet(ctx, "public", new HttpServlet() {
            @Override
            protected void service(HttpServletRequest req, HttpServletResponse resp) throws IOException {
                resp.setContentType("text/plain");
                if ("/admin-hits".equals(req.getPathInfo())) {
                    resp.getWriter().print(adminHits.get());
                    return;
                }
                resp.getWriter().print("public " + req.getRequestURI());
            }
        });
        ctx.addServletMappingDecoded("/v2/*", "public");

        Tomcat.addServlet(ctx, "admin", new HttpServlet() {
            @Override
            protected void service(HttpServletRequest req, HttpServletResponse resp) throws IOException {
                adminHits.incrementAndGet();
                resp.setContentType("text/plain");
                resp.getWriter().print("ADMIN " + req.getServletPath() + req.getPathInfo());
            }
        });
        ctx.addServletMappingDecoded("/admin/*", "admin");

        tomcat.start();
        System.out.println("PORT " + connector.getLocalPort());
        System.out.flush();
        tomcat.getServer().await();
    }
}
