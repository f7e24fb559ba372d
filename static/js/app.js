/*
 * mnist_web page: draw a digit (Pointer Events: mouse, touch, pen) or upload an image, show what the
 * model predicts, let the user confirm or correct it, and list recent predictions.
 *
 * Served under CSP "script-src 'self'; style-src 'self'": no inline script, no style attributes in
 * markup. Runtime CSSOM changes (jQuery .css(), element.style) are allowed and used for bar widths.
 */
(function ($, window, document) {
  "use strict";

  // Canvas size per mode in CSS pixels; also the size of the PNG sent to /predict/ (numbers.NUMBER_CANVAS).
  var SIZES = { digit: { width: 280, height: 280 }, number: { width: 840, height: 280 } };
  var LINE_WIDTH = 18; // CSS pixels
  var HISTORY_LIMIT = 12;
  var REFUSAL_TEXT = "That doesn't look like a digit";

  var root = ($("#app").attr("data-root") || "").replace(/\/+$/, "");
  var api = {
    predict: root + "/predict/",
    predictions: root + "/api/v1/predictions",
    stats: root + "/api/v1/stats",
    predictIn: function (url, mode) {
      return url + "?mode=" + encodeURIComponent(mode);
    },
    record: function (id) {
      return root + "/api/v1/predictions/" + encodeURIComponent(id);
    },
  };

  var canvas = document.getElementById("canvas");
  var ctx = canvas.getContext("2d");
  var $live = $("#live");
  var $message = $("#message");
  var $result = $("#result");
  var $bars = $("#bars");
  var $feedback = $("#feedback");
  var $feedbackStatus = $("#feedback-status");
  var $history = $("#history");

  var state = {
    mode: "digit", // "digit" or "number": what the canvas and uploads are read as
    size: SIZES.digit, // the canvas's size now, CSS pixels
    lastSent: null, // what was last sent: {file: File} or {canvas: true}, to send again as a number
    ratio: 1, // device pixels per CSS pixel of the canvas backing store
    hasInk: false,
    pointerId: null, // the pointer drawing the current stroke (one stroke at a time)
    last: null, // last point of the current stroke, CSS pixels
    predicting: false, // a canvas prediction is in flight
    queued: false, // another canvas prediction was asked for meanwhile
    busy: 0, // requests in flight that will change the result area
    current: null, // the record shown in the result area
    historySeq: 0,
    statsSeq: 0,
  };

  // ---- canvas ------------------------------------------------------------------------------

  function applyPen() {
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.lineWidth = LINE_WIDTH;
    ctx.strokeStyle = "#000";
    ctx.fillStyle = "#000";
  }

  function paintWhite() {
    ctx.save();
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.restore();
  }

  /* Size the backing store to devicePixelRatio (and the mode's canvas size) so strokes stay crisp; keeps
     what was drawn at its place and scale (a digit drawn before switching to Number mode stays the first). */
  function setupBackingStore() {
    var ratio = window.devicePixelRatio || 1;
    var keep = null;
    var before = state.drawn || state.size;
    if (state.hasInk) {
      keep = document.createElement("canvas");
      keep.width = canvas.width;
      keep.height = canvas.height;
      keep.getContext("2d").drawImage(canvas, 0, 0);
    }
    state.ratio = ratio;
    state.drawn = state.size;
    canvas.width = Math.round(state.size.width * ratio);
    canvas.height = Math.round(state.size.height * ratio);
    ctx.setTransform(canvas.width / state.size.width, 0, 0, canvas.height / state.size.height, 0, 0);
    paintWhite();
    if (keep) {
      ctx.imageSmoothingEnabled = true;
      ctx.drawImage(keep, 0, 0, before.width, before.height);
    }
    applyPen();
  }

  /* Re-size the backing store when the page moves to a screen of another density or is zoomed. */
  function watchPixelRatio() {
    if (!window.matchMedia) {
      return;
    }
    var query = window.matchMedia("(resolution: " + state.ratio + "dppx)");
    var onChange = function () {
      if (query.removeEventListener) {
        query.removeEventListener("change", onChange);
      }
      setupBackingStore();
      watchPixelRatio();
    };
    if (query.addEventListener) {
      query.addEventListener("change", onChange, { once: true });
    }
  }

  function pointFrom(event) {
    var box = canvas.getBoundingClientRect();
    var size = state.size;
    return {
      x: ((event.clientX - box.left) * size.width) / (box.width || size.width),
      y: ((event.clientY - box.top) * size.height) / (box.height || size.height),
    };
  }

  function dot(p) {
    ctx.beginPath();
    ctx.arc(p.x, p.y, LINE_WIDTH / 2, 0, 2 * Math.PI);
    ctx.fill();
  }

  function segment(a, b) {
    ctx.beginPath();
    ctx.moveTo(a.x, a.y);
    ctx.lineTo(b.x, b.y);
    ctx.stroke();
  }

  function onPointerDown(event) {
    if (state.pointerId !== null) {
      return; // a second finger while drawing: ignore it
    }
    if (event.pointerType === "mouse" && event.button !== 0) {
      return;
    }
    event.preventDefault(); // no text selection, no emulated mouse events
    state.pointerId = event.pointerId;
    try {
      canvas.setPointerCapture(event.pointerId);
    } catch (err) {
      // the pointer is already gone; the stroke ends at the next pointerup/cancel
    }
    canvas.focus({ preventScroll: true });
    applyPen();
    state.last = pointFrom(event);
    dot(state.last);
    state.hasInk = true;
  }

  function onPointerMove(event) {
    if (event.pointerId !== state.pointerId) {
      return;
    }
    event.preventDefault();
    // Coalesced events carry every sample since the last frame: smoother fast strokes.
    var samples = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
    if (!samples.length) {
      samples = [event];
    }
    for (var i = 0; i < samples.length; i += 1) {
      var p = pointFrom(samples[i]);
      segment(state.last, p);
      state.last = p;
    }
  }

  function endStroke(event, finished) {
    if (event.pointerId !== state.pointerId) {
      return;
    }
    state.pointerId = null;
    state.last = null;
    if (canvas.hasPointerCapture && canvas.hasPointerCapture(event.pointerId)) {
      canvas.releasePointerCapture(event.pointerId);
    }
    if (finished && $live.prop("checked")) {
      predictCanvas();
    }
  }

  function clearCanvas() {
    paintWhite();
    state.hasInk = false;
    state.queued = false;
    hideMessage();
  }

  /* The drawing as a PNG data URL of the mode's size (280x280, or 840x280 for numbers), on white. */
  function canvasDataUrl() {
    var size = state.size;
    var out = document.createElement("canvas");
    out.width = size.width;
    out.height = size.height;
    var octx = out.getContext("2d");
    octx.fillStyle = "#fff";
    octx.fillRect(0, 0, size.width, size.height);
    octx.imageSmoothingEnabled = true;
    octx.imageSmoothingQuality = "high";
    octx.drawImage(canvas, 0, 0, size.width, size.height);
    return out.toDataURL("image/png");
  }

  /* Switch between reading one digit and reading a number: the canvas widens for numbers. */
  function setMode(mode) {
    if (!SIZES[mode]) {
      mode = "digit";
    }
    state.mode = mode;
    state.size = SIZES[mode];
    $("#mode-switch [data-mode]").each(function () {
      $(this).attr("aria-checked", $(this).attr("data-mode") === mode ? "true" : "false");
    });
    $("#app").toggleClass("is-number", mode === "number").attr("data-mode", mode);
    $(canvas).attr(
      "aria-label",
      mode === "number"
        ? "Drawing area: write a number, digits side by side. Enter reads it, Escape clears."
        : "Drawing area: draw one digit. Enter predicts, Escape clears."
    );
    setupBackingStore();
    try {
      window.localStorage.setItem("mnist_web.mode", mode);
    } catch (err) {
      // not remembered; fine
    }
  }

  // ---- messages ----------------------------------------------------------------------------

  function showMessage(text, kind) {
    $message
      .text(text)
      .removeClass("is-error is-info")
      .addClass(kind === "info" ? "is-info" : "is-error")
      .prop("hidden", false);
  }

  function hideMessage() {
    $message.prop("hidden", true).text("");
  }

  function errorText(xhr) {
    var body = xhr.responseJSON;
    if (!body && xhr.responseText) {
      try {
        body = JSON.parse(xhr.responseText);
      } catch (err) {
        body = null;
      }
    }
    if (body && typeof body.message === "string" && body.message) {
      return body.message;
    }
    if (xhr.status === 0) {
      return "Could not reach the server. Check the connection and try again.";
    }
    if (xhr.status === 413) {
      return "That image is too large.";
    }
    return "The server answered " + xhr.status + (xhr.statusText ? " (" + xhr.statusText + ")" : "") + ".";
  }

  function setBusy(delta) {
    state.busy = Math.max(0, state.busy + delta);
    $result.toggleClass("is-busy", state.busy > 0).attr("aria-busy", state.busy > 0 ? "true" : "false");
  }

  // ---- predictions -------------------------------------------------------------------------

  function percent(p) {
    var value = Number(p) * 100;
    if (!isFinite(value)) {
      return "–";
    }
    if (value > 0 && value < 0.1) {
      return "<0.1%";
    }
    return value.toFixed(1) + "%";
  }

  function inputUrl(record) {
    return api.record(record.id) + "/input";
  }

  /* The model answered "not a digit": no digit (records made before refusals have no verdict). */
  function isRefused(record) {
    return record.verdict === "not_a_digit" || record.digit === null || record.digit === undefined;
  }

  function isNumber(record) {
    return record.mode === "number";
  }

  /* What a record answered, as one short text: the digit, the number, or why there is none. */
  function answerText(record) {
    if (isNumber(record)) {
      return record.number !== null && record.number !== undefined ? String(record.number) : "?";
    }
    if (record.verdict === "several_digits") {
      return record.number ? String(record.number) : "…";
    }
    return isRefused(record) ? "✗" : String(record.digit);
  }

  function announcement(record) {
    var sure = ", confidence " + percent(record.confidence) + ".";
    if (isNumber(record)) {
      return record.verdict === "number" ? "Read the number " + record.number + sure : "Not read: a part is not a digit.";
    }
    if (record.verdict === "several_digits") {
      return "That looks like several digits" + (record.number ? " (" + record.number + ")" : "") + ".";
    }
    if (isRefused(record)) {
      return REFUSAL_TEXT + ", " + percent(record.confidence) + " sure.";
    }
    return "Predicted " + record.digit + sure;
  }

  function showResult(record) {
    state.current = record;
    hideMessage();

    var several = record.verdict === "several_digits";
    var refused = !isNumber(record) && !several && isRefused(record);
    var digit = refused || several || isNumber(record) ? null : Number(record.digit);
    $result.toggleClass("is-refused", refused);
    $("#result-digit")
      .text(answerText(record))
      .attr({ "data-id": String(record.id), "data-verdict": record.verdict || (refused ? "not_a_digit" : "digit") })
      .toggleClass("is-number", isNumber(record) || several);
    if (isNumber(record) && record.verdict !== "number") {
      $("#result-confidence").text("A part of it doesn't look like a digit");
    } else if (several) {
      $("#result-confidence").text("Several digits: not guessed as one");
    } else if (refused) {
      $("#result-confidence").empty().append($("<strong>").text(REFUSAL_TEXT), " (" + percent(record.confidence) + " sure)");
    } else {
      $("#result-confidence").empty().append("Confidence ", $("<strong>").text(percent(record.confidence)));
    }
    $("#result-announcement").text(announcement(record));
    $(".feedback-question").text(refused ? "Was it a digit after all? Which one?" : "Was that right?");
    $(".feedback-or").text(refused ? "It was:" : "or it was:");

    // A number has no ten probabilities of its own; several digits are not guessed as one.
    var probabilities = several ? [] : record.probabilities || [];
    $bars.prop("hidden", !probabilities.length);
    $bars.children("[data-digit]").each(function () {
      var $bar = $(this);
      var d = Number($bar.attr("data-digit"));
      var p = Number(probabilities[d]) || 0;
      $bar.toggleClass("is-winner", d === digit);
      $bar.find(".bar-fill").css("width", Math.max(0, Math.min(100, p * 100)).toFixed(2) + "%");
      $bar.find(".bar-value").text(percent(p));
      $bar.attr("aria-label", d + ": " + percent(p));
    });

    $("#model-input")
      .attr("src", record.model_input || inputUrl(record))
      .prop("hidden", false);
    $("#model-input-placeholder").prop("hidden", true);

    var meta = [];
    if (record.source) {
      meta.push(record.source === "upload" ? "uploaded image" : String(record.source));
    }
    if (typeof record.latency_ms === "number") {
      meta.push(record.latency_ms.toFixed(1) + " ms");
    }
    if (record.model_version) {
      meta.push("model " + record.model_version);
    }
    $("#result-meta").text(meta.join(" · "));

    $("#several").prop("hidden", !several);
    $("#several-text").text(
      "This looks like several digits" + (record.number ? " (" + record.number + ")" : "") + ", not one."
    );
    showDigits(record);

    $feedback.prop("hidden", false);
    $("#label-buttons").prop("hidden", isNumber(record));
    $("#number-label").prop("hidden", !isNumber(record));
    $("#confirm").prop("hidden", several || (isNumber(record) ? record.verdict !== "number" : digit === null));
    renderFeedback();
    markCurrentInHistory();
  }

  /* A number's picture with a box around each digit read, labelled with its digit and confidence. */
  function showDigits(record) {
    var digits = record.digits || [];
    var $view = $("#number-view");
    var $boxes = $("#number-boxes").empty();
    if (!digits.length) {
      $view.prop("hidden", true);
      return;
    }
    var image = document.getElementById("number-image");
    var place = function () {
      var width = image.naturalWidth || 1;
      var height = image.naturalHeight || 1;
      $boxes.empty();
      digits.forEach(function (d, i) {
        var box = d.box || [0, 0, 0, 0];
        var text = (d.digit === null || d.digit === undefined ? "?" : String(d.digit)) + " " + percent(d.confidence);
        var $box = $("<div>")
          .addClass("digit-box")
          .toggleClass("is-refused", d.digit === null || d.digit === undefined)
          .attr({ "data-index": String(i), "data-digit": d.digit === null ? "" : String(d.digit), title: text })
          .append($("<span>").addClass("digit-box-label").text(text));
        var el = $box[0];
        el.style.left = ((100 * box[0]) / width).toFixed(3) + "%";
        el.style.top = ((100 * box[1]) / height).toFixed(3) + "%";
        el.style.width = ((100 * box[2]) / width).toFixed(3) + "%";
        el.style.height = ((100 * box[3]) / height).toFixed(3) + "%";
        $boxes.append($box);
      });
      $view.attr("data-boxes", String(digits.length));
    };
    $view.prop("hidden", false).attr("data-boxes", "");
    image.onload = place;
    image.src = api.record(record.id) + "/image";
    if (image.complete && image.naturalWidth) {
      place();
    }
  }

  function renderFeedback() {
    var record = state.current;
    if (record && isNumber(record)) {
      var text = record.number_label !== null && record.number_label !== undefined ? String(record.number_label) : null;
      var right = text !== null && text === record.number;
      $("#confirm").attr("aria-pressed", right ? "true" : "false");
      $feedbackStatus.removeClass("is-pending");
      $feedbackStatus.text(
        text === null ? "" : right ? "Saved: marked as correct." : "Saved: the right number is " + text + "."
      );
      return;
    }
    var label = record && record.label !== null && record.label !== undefined ? Number(record.label) : null;
    var correct = label !== null && !isRefused(record) && label === Number(record.digit);
    $("#confirm").attr("aria-pressed", correct ? "true" : "false");
    $("#label-buttons [data-label]").each(function () {
      var $b = $(this);
      $b.attr("aria-pressed", label !== null && !correct && Number($b.attr("data-label")) === label ? "true" : "false");
    });
    $feedbackStatus.removeClass("is-pending");
    if (label === null) {
      $feedbackStatus.text("");
    } else if (correct) {
      $feedbackStatus.text("Saved: marked as correct.");
    } else {
      $feedbackStatus.text("Saved: the right digit is " + label + ".");
    }
  }

  function onPredicted(record) {
    showResult(record);
    refreshHistory();
    refreshStats();
  }

  function predictCanvas() {
    if (state.predicting) {
      state.queued = true; // predict again, with the newest drawing, when this one is done
      return;
    }
    state.predicting = true;
    state.queued = false;
    setBusy(1);
    state.lastSent = { canvas: true };
    $.ajax({
      url: api.predictIn(api.predict, state.mode),
      method: "POST",
      data: canvasDataUrl(),
      contentType: "text/plain",
      dataType: "json",
    })
      .done(onPredicted)
      .fail(function (xhr) {
        showMessage(errorText(xhr));
      })
      .always(function () {
        state.predicting = false;
        setBusy(-1);
        if (state.queued) {
          predictCanvas();
        }
      });
  }

  function uploadFile(file) {
    if (!file) {
      return;
    }
    var form = new FormData();
    form.append("file", file, file.name || "upload");
    form.append("mode", state.mode);
    state.lastSent = { file: file };
    setBusy(1);
    $.ajax({
      url: api.predictions,
      method: "POST",
      data: form,
      processData: false,
      contentType: false,
      dataType: "json",
    })
      .done(onPredicted)
      .fail(function (xhr) {
        showMessage(errorText(xhr));
      })
      .always(function () {
        setBusy(-1);
      });
  }

  function saveLabel(label) {
    var record = state.current;
    if (!record) {
      return;
    }
    $feedbackStatus.addClass("is-pending").text("Saving…");
    $.ajax({
      url: api.record(record.id) + "/label",
      method: "PUT",
      data: JSON.stringify({ label: label }),
      contentType: "application/json",
      dataType: "json",
    })
      .done(function (saved) {
        if (isNumber(record)) {
          record.number_label = saved && saved.number_label !== undefined ? saved.number_label : label;
        } else {
          record.label = saved && saved.label !== undefined ? saved.label : label;
        }
        if (state.current === record) {
          renderFeedback();
        }
        refreshHistory();
        refreshStats();
      })
      .fail(function (xhr) {
        if (state.current === record) {
          $feedbackStatus.removeClass("is-pending").text("");
        }
        showMessage("The label was not saved: " + errorText(xhr));
      });
  }

  // ---- history and stats -------------------------------------------------------------------

  function historyItem(record) {
    var answer = answerText(record);
    var number = isNumber(record);
    var given = number ? record.number_label : record.label;
    var hasLabel = given !== null && given !== undefined;
    var label = hasLabel ? String(given) : null;
    var refused = !number && record.verdict !== "several_digits" && isRefused(record);
    var right = number ? record.number : record.digit === null || record.digit === undefined ? null : String(record.digit);
    var $label = $("<span>").addClass("history-label");
    var description = announcement(record).replace(/\.$/, "");
    if (!hasLabel && refused) {
      $label.addClass("is-refused").text("✗ not a digit");
      description += ", not labelled";
    } else if (!hasLabel) {
      $label.text(record.verdict === "several_digits" ? "several" : percent(record.confidence));
      description += ", not labelled";
    } else if (label === right) {
      $label.addClass("is-correct").text("✓ correct");
      description += ", labelled correct";
    } else {
      $label.addClass("is-wrong").text("✗ was " + label);
      description += ", labelled " + label;
    }
    var $button = $("<button>")
      .attr({ type: "button", title: description, "aria-label": description })
      .addClass("history-item")
      .toggleClass("is-number", number || record.verdict === "several_digits")
      .append(
        $("<img>").attr({ src: inputUrl(record), height: 28, alt: "", loading: "lazy" }),
        $("<span>")
          .addClass("history-digit")
          .toggleClass("is-refused", refused)
          .text(refused ? "–" : answer), // no digit; the label line says why
        $label
      )
      .data("record", record);
    return $("<li>")
      .attr({ "data-id": String(record.id), "data-verdict": refused ? "not_a_digit" : record.verdict || "digit" })
      .toggleClass("is-number", number || record.verdict === "several_digits")
      .append($button);
  }

  function markCurrentInHistory() {
    var id = state.current ? String(state.current.id) : null;
    $history.children("[data-id]").each(function () {
      var $li = $(this);
      $li.children(".history-item").toggleClass("is-current", $li.attr("data-id") === id);
    });
  }

  function refreshHistory() {
    var seq = (state.historySeq += 1);
    $.ajax({ url: api.predictions, data: { limit: HISTORY_LIMIT }, dataType: "json" })
      .done(function (body) {
        if (seq !== state.historySeq) {
          return; // a newer refresh was started
        }
        var items = (body && body.items) || [];
        $history.empty().append(items.map(historyItem));
        $("#history-empty").text("Nothing yet.").prop("hidden", items.length > 0);
        markCurrentInHistory();
      })
      .fail(function () {
        if (seq === state.historySeq) {
          $("#history-empty").text("Recent predictions are not available right now.").prop("hidden", false);
        }
      });
  }

  /* Numbers read, and their own accuracy (a number is right only when every digit is). */
  function appendNumberStats($accuracy, stats) {
    var numbers = stats && stats.numbers;
    if (!numbers || !numbers.total) {
      return;
    }
    var text = " · " + numbers.total + (numbers.total === 1 ? " number" : " numbers");
    if (numbers.accuracy !== null && numbers.accuracy !== undefined) {
      text += ", " + percent(numbers.accuracy) + " read right of " + numbers.labelled + " labelled";
    }
    $accuracy.append($("<span>").addClass("number-stats").text(text));
  }

  function refreshStats() {
    var seq = (state.statsSeq += 1);
    $.ajax({ url: api.stats, dataType: "json" })
      .done(function (stats) {
        if (seq !== state.statsSeq) {
          return;
        }
        var $accuracy = $("#accuracy").empty();
        var total = stats && typeof stats.total === "number" ? stats.total : null;
        var totalText = total ? " · " + total + (total === 1 ? " prediction" : " predictions") : "";
        if (total && stats.not_a_digit) {
          totalText += ", " + stats.not_a_digit + " not a digit";
        }
        $accuracy.attr("data-refused", String((stats && stats.not_a_digit) || 0));
        if (!stats || stats.accuracy === null || stats.accuracy === undefined) {
          $accuracy.text("No labelled predictions yet" + totalText);
          $accuracy.attr("data-accuracy", "");
          appendNumberStats($accuracy, stats);
          return;
        }
        $accuracy
          .attr("data-accuracy", String(stats.accuracy))
          .append(
            "Accuracy ",
            $("<strong>").text(percent(stats.accuracy)),
            " on " + stats.labelled + " labelled (" + stats.correct + " correct)" + totalText
          );
        appendNumberStats($accuracy, stats);
      })
      .fail(function () {
        if (seq === state.statsSeq) {
          $("#accuracy").text("Accuracy not available right now").attr("data-accuracy", "");
        }
      });
  }

  // ---- wiring ------------------------------------------------------------------------------

  function isInteractive(target) {
    return $(target).closest("input, textarea, select, button, a[href], label, [contenteditable]").length > 0;
  }

  function bind() {
    canvas.addEventListener("pointerdown", onPointerDown);
    canvas.addEventListener("pointermove", onPointerMove);
    canvas.addEventListener("pointerup", function (e) {
      endStroke(e, true);
    });
    canvas.addEventListener("pointercancel", function (e) {
      endStroke(e, false);
    });
    canvas.addEventListener("lostpointercapture", function (e) {
      endStroke(e, false);
    });
    canvas.addEventListener("contextmenu", function (e) {
      e.preventDefault(); // long-press on touch screens
    });

    $("#predict").on("click", predictCanvas);
    $("#clear").on("click", function () {
      clearCanvas();
      canvas.focus({ preventScroll: true });
    });

    $(document).on("keydown", function (e) {
      if (e.altKey || e.ctrlKey || e.metaKey || (e.originalEvent && e.originalEvent.isComposing)) {
        return;
      }
      if (e.key === "Enter") {
        if (isInteractive(e.target)) {
          return; // Enter on a button or control does what that control does
        }
        e.preventDefault();
        predictCanvas();
      } else if (e.key === "Escape") {
        clearCanvas();
      }
    });

    try {
      $live.prop("checked", window.localStorage.getItem("mnist_web.live") === "1");
    } catch (err) {
      // storage blocked: the box just starts unchecked
    }
    $live.on("change", function () {
      try {
        window.localStorage.setItem("mnist_web.live", this.checked ? "1" : "0");
      } catch (err) {
        // not remembered; fine
      }
      if (this.checked && state.hasInk) {
        predictCanvas();
      }
    });

    $("#mode-switch").on("click", "[data-mode]", function () {
      setMode($(this).attr("data-mode"));
    });
    $("#switch-to-number").on("click", function () {
      var sent = state.lastSent;
      setMode("number");
      if (sent && sent.file) {
        uploadFile(sent.file);
      } else {
        predictCanvas();
      }
    });
    $("#number-label").on("submit", function (e) {
      e.preventDefault();
      var text = String($("#number-label-input").val() || "").trim();
      if (/^[0-9]{1,32}$/.test(text)) {
        saveLabel(text);
      } else {
        showMessage("Type the right number with its digits only, such as 042.");
      }
    });

    $("#file, #photo").on("change", function () {
      var file = this.files && this.files[0];
      uploadFile(file);
      this.value = ""; // picking the same file again fires "change" again
    });

    var $drop = $("#drop-zone");
    var depth = 0;
    $drop
      .on("dragenter", function (e) {
        e.preventDefault();
        depth += 1;
        $drop.addClass("is-dragover");
      })
      .on("dragover", function (e) {
        e.preventDefault();
        if (e.originalEvent.dataTransfer) {
          e.originalEvent.dataTransfer.dropEffect = "copy";
        }
      })
      .on("dragleave", function () {
        depth = Math.max(0, depth - 1);
        if (!depth) {
          $drop.removeClass("is-dragover");
        }
      })
      .on("drop", function (e) {
        e.preventDefault();
        depth = 0;
        $drop.removeClass("is-dragover");
        var files = e.originalEvent.dataTransfer && e.originalEvent.dataTransfer.files;
        if (files && files.length) {
          uploadFile(files[0]);
        }
      });
    // A file dropped next to the zone must not make the browser navigate away from the page.
    $(document).on("dragover drop", function (e) {
      if (!$(e.target).closest("#drop-zone").length) {
        e.preventDefault();
        if (e.originalEvent.dataTransfer) {
          e.originalEvent.dataTransfer.dropEffect = "none";
        }
      }
    });

    $("#confirm").on("click", function () {
      var record = state.current;
      if (record && (isNumber(record) ? record.verdict === "number" : !isRefused(record))) {
        saveLabel(isNumber(record) ? String(record.number) : Number(record.digit));
      }
    });
    $("#label-buttons").on("click", "[data-label]", function () {
      saveLabel(Number($(this).attr("data-label")));
    });

    $history.on("click", ".history-item", function () {
      var record = $(this).data("record");
      if (record) {
        showResult($.extend({}, record, { model_input: null }));
      }
    });
  }

  var remembered = null;
  try {
    remembered = window.localStorage.getItem("mnist_web.mode");
  } catch (err) {
    // storage blocked: digit mode
  }
  setMode(remembered === "number" ? "number" : "digit");
  watchPixelRatio();
  bind();
  refreshHistory();
  refreshStats();
  $("#app").attr("data-ready", "true");
})(window.jQuery, window, document);
