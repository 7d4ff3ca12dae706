/**
 * The gglib dashboard: one page served by `gglib proxy` at /ui. Views: models (live), activity, logs, machine,
 * playground, config. Hash routing (#/models …) so the static shell is one file; the API key (when the proxy has
 * keys) is asked for before anything else is fetched.
 */
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { ApiError, forgetApiKey, hasApiKey, onAuth, request, setApiKey } from "./api.js";
import { useModels } from "./store.js";
import { ActivityView } from "./views/activity.js";
import { ConfigView } from "./views/config.js";
import { LogsView } from "./views/logs.js";
import { MachineView } from "./views/machine.js";
import { BudgetBar, ModelsView } from "./views/models.js";
import { PlaygroundView } from "./views/playground.js";
import "./app.css";

const VIEWS = [
  ["models", "Models"],
  ["activity", "Activity"],
  ["logs", "Logs"],
  ["machine", "Machine"],
  ["playground", "Playground"],
  ["config", "Config"],
] as const;
type View = (typeof VIEWS)[number][0];

function viewOf(hash: string): View {
  const v = hash.replace(/^#\/?/, "");
  return VIEWS.find(([id]) => id === v)?.[0] ?? "models";
}

type Auth = "checking" | "needed" | "ok";

function useTheme(): [string, () => void] {
  const [theme, setTheme] = useState(() => localStorage.getItem("gglib.theme") ?? "auto");
  useEffect(() => {
    if (theme === "auto") delete document.documentElement.dataset.theme;
    else document.documentElement.dataset.theme = theme;
  }, [theme]);
  const next = () => {
    const t = theme === "auto" ? "dark" : theme === "dark" ? "light" : "auto";
    localStorage.setItem("gglib.theme", t);
    setTheme(t);
  };
  return [theme, next];
}

function App() {
  const [view, setView] = useState<View>(() => viewOf(location.hash));
  const [auth, setAuth] = useState<Auth>("checking");
  const [authError, setAuthError] = useState<string | undefined>();
  const [theme, nextTheme] = useTheme();
  useEffect(() => {
    const onHash = () => setView(viewOf(location.hash));
    addEventListener("hashchange", onHash);
    return () => removeEventListener("hashchange", onHash);
  }, []);
  const check = async () => {
    try {
      await request("/api/status");
      setAuth("ok");
      setAuthError(undefined);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        setAuth("needed");
        if (hasApiKey()) setAuthError("That key was not accepted.");
      } else {
        setAuth("ok"); // the views show the error
      }
    }
  };
  useEffect(() => {
    void check();
    return onAuth((needed) => needed && setAuth("needed"));
  }, []);
  const [models, refreshModels] = useModels(auth === "ok");
  const names = (models.status?.models ?? []).map((m) => m.name);
  // the playground chats with the presets too (each runs on its model: the same process, its own request changes)
  const chatNames = (models.status?.models ?? []).flatMap((m) => [m.name, ...(m.presets ?? [])]);

  return (
    <>
      <header class="top">
        <a class="brand" href="#/models">
          gglib
        </a>
        <nav aria-label="Views">
          {VIEWS.map(([id, label]) => (
            <a key={id} href={`#/${id}`} aria-current={view === id ? "page" : undefined}>
              {label}
            </a>
          ))}
        </nav>
        <span class="spacer" />
        {auth === "ok" ? (
          <span class={`live ${models.connected ? "on" : "off"}`} title={models.error ?? "live updates"}>
            {models.connected ? "live" : "offline"}
          </span>
        ) : null}
        <button type="button" class="ghost" onClick={nextTheme} title="theme: auto → dark → light">
          theme: {theme}
        </button>
        {hasApiKey() && auth === "ok" ? (
          <button type="button" class="ghost" onClick={forgetApiKey}>
            forget key
          </button>
        ) : null}
      </header>
      <main id="main">
        {auth === "checking" ? <p class="muted">Connecting…</p> : null}
        {auth === "needed" ? (
          <KeyForm
            error={authError}
            onKey={(k, remember) => {
              setApiKey(k, remember);
              void check();
            }}
          />
        ) : null}
        {auth === "ok" ? (
          <>
            {view === "models" ? <BudgetBar s={models} /> : null}
            {models.error && view === "models" ? <p class="warn small">{models.error}</p> : null}
            {view === "models" ? (
              <ModelsView s={models} budget={models.status?.budget?.bytes ?? null} refresh={refreshModels} />
            ) : null}
            {view === "activity" ? <ActivityView models={names} /> : null}
            {view === "logs" ? <LogsView models={names} /> : null}
            {view === "machine" ? <MachineView /> : null}
            {view === "playground" ? <PlaygroundView models={chatNames} /> : null}
            {view === "config" ? <ConfigView /> : null}
          </>
        ) : null}
      </main>
    </>
  );
}

function KeyForm({ onKey, error }: { onKey: (k: string, remember: boolean) => void; error: string | undefined }) {
  const [k, setK] = useState("");
  const [remember, setRemember] = useState(false);
  return (
    <form
      class="keyform card"
      onSubmit={(e) => {
        e.preventDefault();
        if (k.trim()) onKey(k, remember);
      }}
    >
      <h2>API key</h2>
      <p>This proxy needs an API key. It is sent with every request from this page and never anywhere else.</p>
      <label>
        Key{" "}
        <input
          type="password"
          name="apikey"
          autoComplete="current-password"
          value={k}
          onInput={(e) => setK((e.target as HTMLInputElement).value)}
          autoFocus
        />
      </label>
      <label>
        <input
          type="checkbox"
          checked={remember}
          onChange={(e) => setRemember((e.target as HTMLInputElement).checked)}
        />{" "}
        remember on this device
      </label>
      {error ? (
        <p class="error" role="alert">
          {error}
        </p>
      ) : null}
      <button type="submit">Open the dashboard</button>
    </form>
  );
}

render(<App />, document.getElementById("app")!);
