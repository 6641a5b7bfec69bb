// deploy/: the Kubernetes manifests against the Kubernetes schemas (kubernetes-models), the compose file against the
// Compose Specification's JSON Schema (ajv), and the settings that must agree with the gateway's own config.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { copyFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { Ajv } from "ajv";
import { Deployment } from "kubernetes-models/apps/v1";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { ConfigMap, Service } from "kubernetes-models/v1";
import { parseAllDocuments, parse } from "yaml";
import { loadConfigText } from "../../src/config/load.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const K8S = join(ROOT, "deploy/k8s");

type Manifest = Record<string, unknown> & { apiVersion: string; kind: string; metadata: { name: string } };

// Each object is built through its model class, whose validate() checks it against the Kubernetes OpenAPI schema.
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  "v1/ConfigMap": ConfigMap,
  "v1/Service": Service,
  "apps/v1/Deployment": Deployment,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "autoscaling/v2/HorizontalPodAutoscaler": HorizontalPodAutoscaler,
};

function manifests(dir: string): { file: string; doc: Manifest }[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".yaml") && !f.endsWith("kustomization.yaml"))
    .sort()
    .flatMap((file) =>
      parseAllDocuments(readFileSync(join(dir, file), "utf8")).map((d) => {
        assert.equal(d.errors.length, 0, `${file}: ${d.errors.join("; ")}`);
        return { file, doc: d.toJS() as Manifest };
      }),
    );
}

const all = manifests(K8S);
// The caller names the shape it reads; validate() above is what checks the objects.
// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters
function find<T = Manifest>(kind: string, name?: string): T {
  const m = all.find((x) => x.doc.kind === kind && (name === undefined || x.doc.metadata.name === name));
  assert.ok(m, `a ${kind} in deploy/k8s`);
  return m.doc as unknown as T;
}

test("every Kubernetes manifest validates against its Kubernetes schema", () => {
  assert.ok(all.length >= 7, "ConfigMap, Deployment, Service, PDB, HPA and the optional Redis");
  for (const { file, doc } of all) {
    const Model = MODELS[`${doc.apiVersion}/${doc.kind}`];
    assert.ok(Model, `${file}: no model for ${doc.apiVersion} ${doc.kind}`);
    assert.doesNotThrow(
      () => new Model(doc as never).validate(),
      `${file}: ${doc.kind} ${doc.metadata.name}`,
    );
    const labels = (doc.metadata as { labels?: Record<string, string> }).labels ?? {};
    for (const key of ["name", "instance", "component", "part-of", "version"]) {
      assert.ok(labels[`app.kubernetes.io/${key}`], `${file}: label app.kubernetes.io/${key}`);
    }
  }
});

test("the validation rejects a broken manifest (the check can fail)", () => {
  const broken = structuredClone(find<{ spec: { replicas: unknown } }>("Deployment", "gateway"));
  broken.spec.replicas = "two";
  assert.throws(() => new Deployment(broken as never).validate(), /replicas/);
});

test("kustomization lists every gateway manifest", () => {
  const k = parse(readFileSync(join(K8S, "kustomization.yaml"), "utf8")) as { resources: string[] };
  const top = readdirSync(K8S).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml");
  assert.deepEqual([...k.resources].sort(), top.sort());
  for (const r of k.resources) assert.ok(existsSync(join(K8S, r)), r);
});

interface Probe {
  httpGet?: { path: string; port: string | number };
}
interface Container {
  name: string;
  ports: { name: string; containerPort: number }[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  startupProbe?: Probe;
  securityContext?: { readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean };
  volumeMounts: { name: string; mountPath: string; subPath?: string }[];
  env: { name: string; value?: string }[];
}
interface DeploymentShape {
  spec: {
    replicas: number;
    selector: { matchLabels: Record<string, string> };
    strategy: { rollingUpdate: { maxUnavailable: number | string } };
    template: {
      metadata: { labels: Record<string, string> };
      spec: {
        terminationGracePeriodSeconds: number;
        securityContext: { runAsNonRoot?: boolean; runAsUser?: number };
        containers: Container[];
        volumes: { name: string; configMap?: { name: string } }[];
      };
    };
  };
}

test("the Deployment: 2 replicas, no pod taken away first, probes, non-root, read-only root, ConfigMap as a directory", () => {
  const d = find<DeploymentShape>("Deployment", "gateway");
  assert.equal(d.spec.replicas, 2);
  assert.equal(d.spec.strategy.rollingUpdate.maxUnavailable, 0);
  const pod = d.spec.template.spec;
  for (const [k, v] of Object.entries(d.spec.selector.matchLabels))
    assert.equal(d.spec.template.metadata.labels[k], v);
  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.ok((pod.securityContext.runAsUser ?? 0) > 0);
  const c = pod.containers.find((x) => x.name === "gateway")!;
  assert.equal(c.securityContext?.readOnlyRootFilesystem, true);
  assert.equal(c.securityContext?.allowPrivilegeEscalation, false);
  assert.equal(c.livenessProbe?.httpGet?.path, "/healthz");
  assert.equal(c.readinessProbe?.httpGet?.path, "/readyz");
  assert.ok(c.startupProbe?.httpGet, "a startupProbe");

  // The config is mounted as a directory (a subPath mount never sees updates) at the directory of GATEWAY_CONFIG.
  const config = pod.volumes.find((v) => v.configMap?.name === "gateway-config");
  assert.ok(config);
  const mount = c.volumeMounts.find((m) => m.name === config.name)!;
  assert.equal(mount.subPath, undefined);
  const configFile = c.env.find((e) => e.name === "GATEWAY_CONFIG")?.value;
  assert.equal(configFile, `${mount.mountPath}/gateway.yaml`);

  // Probes reach the port that serves the gateway's own endpoints (admin.listen when set).
  const gateway = loadConfigText(
    find<{ data: Record<string, string> }>("ConfigMap", "gateway-config").data["gateway.yaml"]!,
    "configmap",
    {},
  );
  const endpointsPort = gateway.admin.listen?.port ?? gateway.listen.port;
  assert.notEqual(gateway.admin.listen?.host, "127.0.0.1", "the kubelet probes from outside the pod");
  for (const probe of [c.livenessProbe, c.readinessProbe, c.startupProbe]) {
    const port = probe?.httpGet?.port;
    const number = typeof port === "number" ? port : c.ports.find((p) => p.name === port)?.containerPort;
    assert.equal(number, endpointsPort);
  }
});

test("terminationGracePeriodSeconds >= drainDelay + shutdownGrace + 5 s of the ConfigMap's gateway.yaml", () => {
  const cm = find<{ data: Record<string, string> }>("ConfigMap", "gateway-config");
  const gateway = loadConfigText(cm.data["gateway.yaml"]!, "deploy/k8s/configmap.yaml", {});
  assert.ok(gateway.drainDelay > 0, "a drainDelay covers the endpoint-removal race");
  const d = find<DeploymentShape>("Deployment", "gateway");
  const needed = (gateway.drainDelay + gateway.shutdownGrace) / 1000 + 5;
  assert.ok(
    d.spec.template.spec.terminationGracePeriodSeconds >= needed,
    `terminationGracePeriodSeconds ${d.spec.template.spec.terminationGracePeriodSeconds} < ${needed}`,
  );
});

test("Service, PodDisruptionBudget and HorizontalPodAutoscaler select the gateway's pods", () => {
  const d = find<DeploymentShape>("Deployment", "gateway");
  const labels = d.spec.template.metadata.labels;
  const matches = (sel: Record<string, string>) => Object.entries(sel).every(([k, v]) => labels[k] === v);
  assert.ok(
    matches(find<{ spec: { selector: Record<string, string> } }>("Service", "gateway").spec.selector),
  );
  const pdb = find<{ spec: { minAvailable: number; selector: { matchLabels: Record<string, string> } } }>(
    "PodDisruptionBudget",
  );
  assert.ok(matches(pdb.spec.selector.matchLabels));
  assert.ok(pdb.spec.minAvailable >= 1 && pdb.spec.minAvailable < d.spec.replicas);
  const hpa = find<{ spec: { minReplicas: number; scaleTargetRef: { kind: string; name: string } } }>(
    "HorizontalPodAutoscaler",
  );
  assert.deepEqual(hpa.spec.scaleTargetRef.kind, "Deployment");
  assert.equal(hpa.spec.scaleTargetRef.name, "gateway");
  assert.ok(hpa.spec.minReplicas >= 2);
});

const COMPOSE = join(ROOT, "deploy/compose.yaml");
const compose = parse(readFileSync(COMPOSE, "utf8")) as {
  services: Record<
    string,
    { volumes?: (string | { source?: string })[]; environment?: Record<string, string> }
  >;
};

test("deploy/compose.yaml validates against the Compose Specification's JSON Schema", () => {
  const schema = JSON.parse(readFileSync(join(ROOT, "deploy/schema/compose-spec.json"), "utf8")) as object;
  // The spec names its meta-schema "https://json-schema.org/draft-07/schema"; ajv registers draft-07 under the
  // canonical "http://json-schema.org/draft-07/schema#", so the vendored file (kept unchanged) is pointed there.
  Object.assign(schema, { $schema: "http://json-schema.org/draft-07/schema#" });
  // strict off: the spec uses keywords ajv does not know by default (deprecated, patternProperties with x-).
  const ajv = new Ajv({ allErrors: true, strict: false });
  const validate = ajv.compile(schema);
  assert.ok(validate(compose), ajv.errorsText(validate.errors));
  const broken: { services: Record<string, Record<string, unknown>> } = structuredClone(compose);
  broken.services.gateway!.ports = "8002";
  assert.equal(validate(broken), false, "the schema check can fail");
});

test("compose runs the gateway, Redis, Prometheus and Grafana, and every file it mounts exists", () => {
  for (const s of ["gateway", "redis", "prometheus", "grafana"]) assert.ok(compose.services[s], s);
  for (const [name, service] of Object.entries(compose.services)) {
    for (const v of service.volumes ?? []) {
      const source = typeof v === "string" ? v.split(":")[0]! : (v.source ?? "");
      if (!source.startsWith(".")) continue; // a named volume
      assert.ok(existsSync(resolve(dirname(COMPOSE), source)), `${name}: ${source} exists`);
    }
  }
  const provisioning = join(ROOT, "deploy/grafana/provisioning");
  const dashboards = parse(readFileSync(join(provisioning, "dashboards/gateway.yaml"), "utf8")) as {
    providers: { options: { path: string } }[];
  };
  const mounted = compose.services
    .grafana!.volumes!.map(String)
    .find((v) => v.startsWith("../docs/grafana:"));
  assert.ok(mounted, "the bundled dashboard is mounted into Grafana");
  assert.equal(mounted.split(":")[1], dashboards.providers[0]!.options.path);
  const prom = readFileSync(join(ROOT, "deploy/prometheus/prometheus.yml"), "utf8");
  assert.match(prom, /targets: \["gateway:8002"\]/);
});

test("promtool accepts the compose Prometheus config with the bundled alert rules beside it", async () => {
  // Laid out as compose mounts them: prometheus.yml and alerts.yml in one directory.
  const dir = await mkdtemp(join(tmpdir(), "gateway-prom-"));
  await copyFile(join(ROOT, "deploy/prometheus/prometheus.yml"), join(dir, "prometheus.yml"));
  await copyFile(join(ROOT, "docs/prometheus/alerts.yml"), join(dir, "alerts.yml"));
  const r = spawnSync("/usr/bin/promtool", ["check", "config", join(dir, "prometheus.yml")], {
    encoding: "utf8",
  });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  await rm(dir, { recursive: true });
});
