// Silent monitoring of one conversation: new messages appear as they arrive (read only).
"use strict";
(() => {
  const { data, live, messageItem } = OneStop;
  const { conversation_id: id } = data("monitor-data");
  const history = document.getElementById("monitor-history");
  live((event) => {
    if (event.type === "message" && event.conversation_id === id) history.append(messageItem(event));
  }, (socket) => socket.send(JSON.stringify({ monitor: id })));
})();
