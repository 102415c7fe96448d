// Stand-in for the client SDK, built into servers compiled without node/npm (see cmake/embed_console.cmake):
// the console page loads, says what is missing, and cannot connect.
const message =
  "The client SDK (broadcaster.js) is missing: this server was built without node and npm. " +
  "Install them (scripts/install-deps.sh) and rebuild, or serve an assembled console with --console-dir.";

export class BroadcasterError extends Error {
  constructor(code, detail) {
    super(detail ?? code);
    this.code = code;
  }
}

export class Broadcaster {
  constructor() {
    throw new BroadcasterError("Unavailable", message);
  }
}

const note = document.createElement("p");
note.id = "sdk-missing";
note.setAttribute("role", "alert");
note.textContent = message;
note.style.cssText = "margin:0;padding:.75em 1em;background:#fde2e1;color:#8a1f11;font-weight:600";
document.body.prepend(note);
