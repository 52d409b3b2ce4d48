"""The face engine: offline model packs, detect -> quality -> embed -> 1:N match -> vote.

Stage API (plain data in and out; each stage can be timed and tested alone)::

    from kiosk.face.engine import FaceEngine
    from kiosk.face.gallery import Gallery, pack_change
    from kiosk.face.walkup import FrameProcessor

    engine = FaceEngine.from_config(cfg.face, cfg.quality)    # kiosk.face.engine
    faces = engine.detect(frame)                  # [Face(bbox, kps, det_score)], one detector pass
    faces = engine.detect_photo(image)            # + retries for stills (large input, padded crop), levelled
    face, faces = engine.photo_face(image)        # a still's presenting face, the only one levelled
    face = engine.choose(faces, frame.shape)      # the presenting face (face.pick policy) or None
    report = engine.assess_quality(frame, face)   # QualityReport(ok, reasons, metrics)
    vector = engine.embed(frame, face)            # float32 (512,), L2-normalised

    gallery = Gallery.from_roster(store.roster, engine.model_id, cfg.match)   # kiosk.face.gallery
    gallery, point = roster_gallery(store.roster, engine.pack, cfg.face, cfg.match)  # the same at the
                                                  # threshold its roster size calls for (calibration)
    match = gallery.search(vector)                # Match(employee_id, score, margin, accepted, reason)
    warning = pack_change(store.roster, engine.model_id)   # templates of another model? what to do

    strong = strong_threshold(engine.pack, cfg.match)      # kiosk.face.calibration: the pack's
    vote = FrameVote.from_config(cfg.match, strong)   # kiosk.face.vote: k of the last n, or 2 strong
    decision = vote.push(match)                   # Decision(employee_id, votes, frames, decided, score)

    loop = FrameProcessor(engine, gallery, cfg.match)      # kiosk.face.walkup: all of the above per
    result = loop.process(frame)                  # frame, with tracking -> FrameResult(state, ...)

Modules: config (the [face], [quality], [match] sections), pack (model files, model id), types
(Face, QualityReport), engine, quality, gallery (+ coarse, the int8 index for large galleries),
calibration (decision threshold from the pack's calibration, roster size and face.target_fpir;
the strong threshold), vote, walkup. This package imports nothing heavy
itself, so config loading stays fast.
"""
